<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 502 The service refused, dropped the connection or failed after retries. */
class UpstreamException extends ServerException
{
}

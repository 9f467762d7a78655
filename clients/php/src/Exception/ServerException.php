<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 5xx: the gateway or the service behind it failed; safe requests are retried. */
class ServerException extends ApiException
{
}

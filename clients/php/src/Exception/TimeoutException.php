<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** No (complete) answer within the client's connect or total timeout. */
final class TimeoutException extends TransportException
{
}

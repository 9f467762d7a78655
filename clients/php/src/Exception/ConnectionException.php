<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** The gateway could not be reached (refused, unresolvable) or dropped the connection. */
final class ConnectionException extends TransportException
{
}

<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** An answer the gateway would not send: a success whose body is not the JSON expected. */
final class UnexpectedResponseException extends GatewayException
{
    public function __construct(
        string $message,
        string $requestId,
        public readonly int $status,
        public readonly string $body,
    ) {
        parent::__construct($message, $requestId);
    }
}

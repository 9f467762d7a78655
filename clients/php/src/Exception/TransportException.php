<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** No answer came: the request may or may not have reached the gateway. */
abstract class TransportException extends GatewayException
{
    /**
     * @param bool $requestSent false when the connection was never made, so the request
     *                          certainly had no effect and may be resent whatever it was
     */
    public function __construct(
        string $message,
        string $requestId,
        public readonly bool $requestSent = true,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $requestId, $previous);
    }
}

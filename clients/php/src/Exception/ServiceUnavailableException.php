<?php

declare(strict_types=1);

namespace AiGateway\Exception;

use AiGateway\Http\HttpResponse;

/** 503 No healthy upstream, an open circuit, or a state store down. `retryAfter` is the gateway's Retry-After, in seconds. */
final class ServiceUnavailableException extends ServerException
{
    /** @param array<string, mixed> $problem */
    public function __construct(
        string $message,
        string $requestId,
        int $status,
        string $type,
        string $title,
        string $detail,
        array $problem,
        ?string $errorCode,
        HttpResponse $response,
        public readonly ?int $retryAfter = null,
    ) {
        parent::__construct($message, $requestId, $status, $type, $title, $detail, $problem,
            $errorCode, $response);
    }
}

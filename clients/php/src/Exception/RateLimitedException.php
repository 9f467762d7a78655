<?php

declare(strict_types=1);

namespace AiGateway\Exception;

use AiGateway\Http\HttpResponse;

/** 429 Over a rate limit, quota or concurrency cap. `retryAfter` is the gateway's Retry-After, in seconds. */
final class RateLimitedException extends ApiException
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

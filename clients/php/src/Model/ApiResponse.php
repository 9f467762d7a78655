<?php

declare(strict_types=1);

namespace AiGateway\Model;

use AiGateway\Http\HttpResponse;

/** A successful answer of `Client::call()`: the decoded JSON and what the headers say. */
final class ApiResponse
{
    public function __construct(
        public readonly int $status,
        public readonly mixed $data,
        public readonly string $requestId,
        public readonly ?RateLimit $rateLimit,
        public readonly ?string $cache,
        public readonly HttpResponse $raw,
    ) {
    }

    public static function fromResponse(HttpResponse $response, string $sentRequestId): self
    {
        return new self($response->status, $response->jsonOrNull(),
            $response->header('x-request-id') ?? $sentRequestId,
            RateLimit::fromResponse($response), $response->header('x-cache'), $response);
    }
}

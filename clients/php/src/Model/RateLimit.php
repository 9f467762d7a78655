<?php

declare(strict_types=1);

namespace AiGateway\Model;

use AiGateway\Http\HttpResponse;

/** The RateLimit-* headers of an answer: the limit closest to exhaustion. */
final class RateLimit
{
    public function __construct(
        public readonly int $limit,
        public readonly int $remaining,
        public readonly int $resetSeconds,
    ) {
    }

    public static function fromResponse(HttpResponse $response): ?self
    {
        $limit = $response->intHeader('ratelimit-limit');
        $remaining = $response->intHeader('ratelimit-remaining');
        if ($limit === null || $remaining === null) {
            return null;
        }

        return new self($limit, $remaining, $response->intHeader('ratelimit-reset') ?? 0);
    }
}

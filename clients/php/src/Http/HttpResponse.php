<?php

declare(strict_types=1);

namespace AiGateway\Http;

/** One answer: status, headers (lower-cased names, last value wins) and the body. */
final class HttpResponse
{
    /** @param array<string, string> $headers lower-cased names */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** The body as JSON, or null when it is not JSON. */
    public function jsonOrNull(): mixed
    {
        if ($this->body === '') {
            return null;
        }
        try {
            return json_decode($this->body, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return null;
        }
    }

    /** Retry-After in whole seconds (RFC 9110: delay-seconds or an HTTP date), if sane. */
    public function retryAfter(): ?int
    {
        $value = trim((string) $this->header('retry-after'));
        if ($value === '') {
            return null;
        }
        if (ctype_digit($value)) {
            return (int) $value;
        }
        $when = strtotime($value);

        return $when === false ? null : max(0, $when - time());
    }

    /** An integer header (RateLimit-Remaining, ...), or null when absent or not a number. */
    public function intHeader(string $name): ?int
    {
        $value = trim((string) $this->header($name));

        return ctype_digit($value) ? (int) $value : null;
    }
}

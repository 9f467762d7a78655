<?php

declare(strict_types=1);

namespace AiGateway\Http;

/** One HTTP request as the client sends it; headers by their canonical names. */
final class HttpRequest
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly string $method,
        public readonly string $url,
        public readonly array $headers = [],
        public readonly string $body = '',
    ) {
    }

    public function withHeader(string $name, string $value): self
    {
        return new self($this->method, $this->url, [...$this->headers, $name => $value], $this->body);
    }
}

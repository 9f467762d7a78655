<?php

declare(strict_types=1);

namespace AiGateway\Auth;

use AiGateway\Http\Transport;

/** A tenant's API key, sent as `Authorization: Bearer` (default) or `X-API-Key`. */
final class ApiKey implements Credentials
{
    public function __construct(
        #[\SensitiveParameter] private readonly string $key,
        private readonly bool $asXApiKeyHeader = false,
    ) {
        if (trim($key) === '') {
            throw new \InvalidArgumentException('the API key is empty');
        }
    }

    public function headers(Transport $transport, string $baseUrl, bool $refresh = false): array
    {
        return $this->asXApiKeyHeader ? ['X-API-Key' => $this->key]
            : ['Authorization' => 'Bearer ' . $this->key];
    }

    public function refreshable(): bool
    {
        return false;
    }

    /** @return array<string, string> */
    public function __debugInfo(): array
    {
        return ['key' => '[redacted]'];
    }
}

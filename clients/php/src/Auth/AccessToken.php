<?php

declare(strict_types=1);

namespace AiGateway\Auth;

/** An OAuth2 access token and when to stop using it (a Unix time, seconds). */
final class AccessToken
{
    public function __construct(
        #[\SensitiveParameter] public readonly string $token,
        public readonly float $expiresAt,
        public readonly string $scope = '',
    ) {
    }

    /** @return array<string, string|float> */
    public function __debugInfo(): array
    {
        return ['token' => '[redacted]', 'expiresAt' => $this->expiresAt, 'scope' => $this->scope];
    }
}

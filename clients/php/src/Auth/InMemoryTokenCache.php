<?php

declare(strict_types=1);

namespace AiGateway\Auth;

/** Tokens in this process only, for as long as the object lives. */
final class InMemoryTokenCache implements TokenCache
{
    /** @var array<string, AccessToken> */
    private array $tokens = [];

    public function get(string $key): ?AccessToken
    {
        return $this->tokens[$key] ?? null;
    }

    public function set(string $key, AccessToken $token): void
    {
        $this->tokens[$key] = $token;
    }
}

<?php

declare(strict_types=1);

namespace AiGateway\Auth;

use Psr\SimpleCache\CacheInterface;

/**
 * Tokens in any PSR-16 cache: Laravel's `Cache::store()`, Symfony's `Psr16Cache`, ...
 * so that every PHP-FPM worker reuses one token instead of fetching its own per request.
 * An entry lives until the token's own refresh time; psr/simple-cache is not required
 * unless this class is used.
 */
final class Psr16TokenCache implements TokenCache
{
    /** @param \Closure(): float|null $clock the current Unix time, for tests */
    public function __construct(
        private readonly CacheInterface $cache,
        private readonly ?\Closure $clock = null,
    ) {
    }

    public function get(string $key): ?AccessToken
    {
        $entry = $this->cache->get($key);
        if (!is_array($entry) || !is_string($entry['token'] ?? null) || !is_float($entry['expires_at'] ?? null)) {
            return null;
        }

        return new AccessToken($entry['token'], $entry['expires_at'], (string) ($entry['scope'] ?? ''));
    }

    public function set(string $key, AccessToken $token): void
    {
        $now = $this->clock !== null ? ($this->clock)() : microtime(true);
        $ttl = (int) floor($token->expiresAt - $now);
        if ($ttl > 0) {
            $this->cache->set($key, ['token' => $token->token, 'expires_at' => $token->expiresAt,
                'scope' => $token->scope], $ttl);
        }
    }
}

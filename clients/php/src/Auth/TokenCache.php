<?php

declare(strict_types=1);

namespace AiGateway\Auth;

/**
 * Where access tokens are kept between requests. The default lives as long as the
 * client; under PHP-FPM, where each request builds a new client, back it with a shared
 * cache (APCu, Redis, Laravel's or Symfony's cache) so that workers reuse one token.
 */
interface TokenCache
{
    public function get(string $key): ?AccessToken;

    public function set(string $key, AccessToken $token): void;
}

<?php

declare(strict_types=1);

namespace AiGateway\Auth;

use AiGateway\Exception\ApiException;
use AiGateway\Exception\UnexpectedResponseException;
use AiGateway\Http\HttpRequest;
use AiGateway\Http\Transport;

/**
 * OAuth2 client credentials (RFC 6749 §4.4) at the gateway's `/oauth/token`, the client
 * authenticated by HTTP Basic. The token is cached and reused until shortly before it
 * expires (`leeway` seconds, at most half its lifetime), and fetched anew after a 401.
 */
final class ClientCredentials implements Credentials
{
    public const TOKEN_PATH = '/oauth/token';

    private readonly TokenCache $cache;

    /** @var \Closure(): float */
    private readonly \Closure $clock;

    /** Tokens fetched by this object (for logs and tests). */
    public int $fetches = 0;

    /**
     * @param list<string>          $scopes none: all of the client's scopes
     * @param (\Closure(): float)|null $clock  the current Unix time, for tests
     */
    public function __construct(
        private readonly string $clientId,
        #[\SensitiveParameter] private readonly string $clientSecret,
        private readonly array $scopes = [],
        ?TokenCache $cache = null,
        private readonly float $leeway = 60.0,
        ?\Closure $clock = null,
        private readonly float $timeout = 10.0,
    ) {
        $this->cache = $cache ?? new InMemoryTokenCache();
        $this->clock = $clock ?? static fn (): float => microtime(true);
    }

    public function headers(Transport $transport, string $baseUrl, bool $refresh = false): array
    {
        $key = 'ai-gateway-token.' . hash('sha256', implode("\n", [$baseUrl, $this->clientId, ...$this->scopes]));
        $token = $refresh ? null : $this->cache->get($key);
        if ($token === null || ($this->clock)() >= $token->expiresAt) {
            $token = $this->fetch($transport, $baseUrl);
            $this->cache->set($key, $token);
        }

        return ['Authorization' => 'Bearer ' . $token->token];
    }

    public function refreshable(): bool
    {
        return true;
    }

    private function fetch(Transport $transport, string $baseUrl): AccessToken
    {
        $requestId = bin2hex(random_bytes(16));
        $form = ['grant_type' => 'client_credentials'];
        if ($this->scopes !== []) {
            $form['scope'] = implode(' ', $this->scopes);
        }
        $basic = base64_encode(rawurlencode($this->clientId) . ':' . rawurlencode($this->clientSecret));
        $response = $transport->send(new HttpRequest('POST', $baseUrl . self::TOKEN_PATH, [
            'Authorization' => 'Basic ' . $basic,
            'Content-Type' => 'application/x-www-form-urlencoded',
            'Accept' => 'application/json',
            'X-Request-ID' => $requestId,
        ], http_build_query($form, '', '&', PHP_QUERY_RFC3986)), $this->timeout, min(2.0, $this->timeout));
        ++$this->fetches;
        if ($response->status !== 200) {
            throw ApiException::fromResponse($response, $requestId);
        }
        $body = $response->jsonOrNull();
        if (!is_array($body) || !is_string($body['access_token'] ?? null) || !is_int($body['expires_in'] ?? null)) {
            throw new UnexpectedResponseException('the token endpoint answered no access token',
                $response->header('x-request-id') ?? $requestId, $response->status, $response->body);
        }
        $lifetime = (float) $body['expires_in'];
        $expiresAt = ($this->clock)() + $lifetime - min($this->leeway, $lifetime / 2);

        return new AccessToken($body['access_token'], $expiresAt, (string) ($body['scope'] ?? ''));
    }

    /** @return array<string, mixed> */
    public function __debugInfo(): array
    {
        return ['clientId' => $this->clientId, 'clientSecret' => '[redacted]', 'scopes' => $this->scopes];
    }
}

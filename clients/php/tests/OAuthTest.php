<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\AccessToken;
use AiGateway\Auth\ClientCredentials;
use AiGateway\Auth\Credentials;
use AiGateway\Auth\InMemoryTokenCache;
use AiGateway\Auth\Psr16TokenCache;
use AiGateway\Auth\TokenCache;
use AiGateway\Exception\UnauthorizedException;
use AiGateway\Http\Transport;
use Symfony\Component\Cache\Adapter\ArrayAdapter;
use Symfony\Component\Cache\Psr16Cache;

/** OAuth2 client credentials against the gateway's real token endpoint. */
final class OAuthTest extends GatewayTestCase
{
    private float $now = 1_000_000.0;

    private function credentials(?TokenCache $cache = null, ?string $secret = null): ClientCredentials
    {
        return new ClientCredentials(self::env('GATEWAY_CLIENT_ID'), $secret ?? self::env('GATEWAY_CLIENT_SECRET'),
            ['sentiment', 'classify'], $cache, leeway: 60.0, clock: fn (): float => $this->now);
    }

    public function testATokenIsFetchedOnceAndReused(): void
    {
        $transport = new RecordingTransport();
        $credentials = $this->credentials();
        $client = $this->client($credentials, $transport);

        self::assertSame('positive', $client->sentiment('great')->first()->label);
        self::assertSame('negative', $client->sentiment('horrible')->first()->label);
        $client->classify('hello');

        self::assertSame(1, $credentials->fetches);
        self::assertSame(['/oauth/token', '/v1/sentiment', '/v1/sentiment', '/v1/classify'], $transport->paths());
        self::assertStringStartsWith('Basic ', $transport->requests[0]->headers['Authorization']);
        self::assertStringStartsWith('Bearer ey', $transport->requests[1]->headers['Authorization']);
    }

    public function testATokenIsReplacedShortlyBeforeItExpires(): void
    {
        $cache = new InMemoryTokenCache();
        $credentials = $this->credentials($cache);
        $client = $this->client($credentials);
        $client->sentiment('fine');
        $expiresIn = self::env('GATEWAY_TOKEN_LIFETIME');

        $this->now += (float) $expiresIn - 61.0; // still more than the leeway left
        $client->sentiment('fine');
        self::assertSame(1, $credentials->fetches);

        $this->now += 2.0; // within the last 60 seconds: fetch a new one first
        $client->sentiment('fine');
        self::assertSame(2, $credentials->fetches);
    }

    public function testAStaleTokenIsRefreshedOnceOn401(): void
    {
        $cache = new InMemoryTokenCache();
        $transport = new RecordingTransport();
        $credentials = $this->credentials($cache);
        $client = $this->client($credentials, $transport);
        $client->sentiment('warm up'); // learn the cache key by filling it
        $key = array_key_first((fn (): array => $this->tokens)->call($cache));
        $cache->set($key, new AccessToken('not-a-valid-token', $this->now + 3600));
        $transport->requests = $transport->statuses = [];

        self::assertSame('positive', $client->sentiment('love it')->first()->label);
        self::assertSame(['/v1/sentiment', '/oauth/token', '/v1/sentiment'], $transport->paths());
        self::assertSame([401, 200, 200], $transport->statuses);
        self::assertNotSame('not-a-valid-token', $cache->get($key)?->token);
    }

    public function testA401ThatANewTokenDoesNotCureIsThrownAfterOneRetry(): void
    {
        $transport = new RecordingTransport();
        $alwaysBad = new class () implements Credentials {
            public int $asked = 0;

            public function headers(Transport $transport, string $baseUrl, bool $refresh = false): array
            {
                ++$this->asked;

                return ['Authorization' => 'Bearer still-not-a-token'];
            }

            public function refreshable(): bool
            {
                return true;
            }
        };

        $this->expectException(UnauthorizedException::class);
        try {
            $this->client($alwaysBad, $transport)->sentiment('hi');
        } finally {
            self::assertSame(2, $alwaysBad->asked);
            self::assertSame([401, 401], $transport->statuses);
        }
    }

    public function testWorkersSharingAPsr16CacheShareOneToken(): void
    {
        // Two clients as two PHP-FPM workers would build them, over one shared cache.
        $shared = new Psr16TokenCache(new Psr16Cache(new ArrayAdapter()), fn (): float => $this->now);
        $first = $this->credentials($shared);
        $second = $this->credentials($shared);

        $this->client($first)->sentiment('one');
        $this->client($second)->sentiment('two');

        self::assertSame(1, $first->fetches);
        self::assertSame(0, $second->fetches);
    }

    public function testAWrongSecretIsUnauthorizedWithTheOAuthErrorCode(): void
    {
        try {
            $this->client($this->credentials(secret: 'wrong-secret'))->sentiment('hi');
            self::fail('no exception');
        } catch (UnauthorizedException $e) {
            self::assertSame('invalid_client', $e->errorCode);
            self::assertSame(401, $e->status);
            self::assertNotSame('', $e->requestId);
        }
    }

    public function testSecretsDoNotShowInDumps(): void
    {
        $dump = print_r($this->credentials(), true);

        self::assertStringNotContainsString(self::env('GATEWAY_CLIENT_SECRET'), $dump);
        self::assertStringContainsString('[redacted]', $dump);
    }
}

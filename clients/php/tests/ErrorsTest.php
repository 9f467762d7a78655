<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\ApiKey;
use AiGateway\Exception\ApiException;
use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\ForbiddenException;
use AiGateway\Exception\GatewayException;
use AiGateway\Exception\GatewayTimeoutException;
use AiGateway\Exception\NotFoundException;
use AiGateway\Exception\PayloadTooLargeException;
use AiGateway\Exception\ServiceUnavailableException;
use AiGateway\Exception\TimeoutException;
use AiGateway\Exception\UnauthorizedException;
use AiGateway\Exception\UpstreamException;
use AiGateway\Exception\ValidationException;
use AiGateway\RetryPolicy;

/** Each error the gateway answers becomes its exception, with the problem's members. */
final class ErrorsTest extends GatewayTestCase
{
    /** @param class-string<GatewayException> $class */
    private function expectFailure(string $class, \Closure $call): GatewayException
    {
        try {
            $call();
        } catch (GatewayException $e) {
            self::assertInstanceOf($class, $e, $e->getMessage());

            return $e;
        }
        self::fail("no $class was thrown");
    }

    public function testABadKeyIsUnauthorizedWithTheRequestId(): void
    {
        $client = $this->client(new ApiKey('gw_nope_not-a-key'));
        $e = $this->expectFailure(UnauthorizedException::class,
            static fn () => $client->sentiment('hi', requestId: 'php-401'));

        self::assertInstanceOf(ApiException::class, $e);
        self::assertSame(401, $e->status);
        self::assertSame('/problems/unauthenticated', $e->type);
        self::assertSame('php-401', $e->requestId);
        self::assertSame('php-401', $e->problem['request_id']);
        self::assertStringContainsString('Bearer', (string) $e->response->header('www-authenticate'));
        self::assertStringContainsString('php-401', $e->getMessage());
    }

    public function testARouteTheTenantMayNotCallIsForbidden(): void
    {
        $client = $this->client(new ApiKey(self::env('GATEWAY_NARROW_KEY')));
        self::assertSame('positive', $client->sentiment('lovely')->first()->label);

        $e = $this->expectFailure(ForbiddenException::class, static fn () => $client->classify('hi'));
        self::assertSame(403, $e->status);
    }

    public function testAnUnknownPathIsNotFound(): void
    {
        $e = $this->expectFailure(NotFoundException::class, fn () => $this->client()->call('/v1/nope', []));
        self::assertSame(404, $e->status);
    }

    public function testABodyTheServiceRefusesIsAValidationError(): void
    {
        $e = $this->expectFailure(ValidationException::class,
            fn () => $this->client()->call('/v1/sentiment', ['texts' => []]));

        self::assertSame(422, $e->status);
        self::assertSame('/problems/invalid-request', $e->type);
        self::assertStringContainsString('must not be empty', $e->detail);
    }

    public function testABodyOverTheRouteLimitIsPayloadTooLarge(): void
    {
        $e = $this->expectFailure(PayloadTooLargeException::class,
            fn () => $this->client()->sentiment(str_repeat('a', 300_000)));

        self::assertSame(413, $e->status);
        self::assertStringContainsString('262144', $e->detail);
    }

    public function testAnUpstreamThatRefusesIsRetriedWhenSafeThenUpstreamException(): void
    {
        $client = $this->client(retry: new RetryPolicy(maxRetries: 2, baseDelay: 0.01));
        $e = $this->expectFailure(UpstreamException::class,
            static fn () => $client->call('/test/down', null, 'GET'));

        self::assertSame(502, $e->status);
        self::assertNotInstanceOf(GatewayTimeoutException::class, $e);
        self::assertCount(2, $this->sleeps);
        self::assertSame([1, 2], array_map(static fn (array $r): int => $r[0], $this->retries));
    }

    public function testAnUnsafeRequestIsNotRetriedOnA502(): void
    {
        $client = $this->client(retry: new RetryPolicy(maxRetries: 2, baseDelay: 0.01));
        $this->expectFailure(UpstreamException::class, static fn () => $client->call('/test/down', ['a' => 1]));

        self::assertSame([], $this->sleeps);
    }

    public function testASlowUpstreamIsAGatewayTimeout(): void
    {
        $e = $this->expectFailure(GatewayTimeoutException::class,
            fn () => $this->client()->call('/test/slow?delay=3', null, 'GET'));

        self::assertSame(504, $e->status);
        self::assertInstanceOf(UpstreamException::class, $e);
    }

    public function testNoHealthyUpstreamIsServiceUnavailableWithRetryAfter(): void
    {
        $e = $this->expectFailure(ServiceUnavailableException::class,
            fn () => $this->client()->call('/test/unhealthy', null, 'GET'));

        self::assertInstanceOf(ServiceUnavailableException::class, $e);
        self::assertSame(503, $e->status);
        self::assertNotNull($e->retryAfter);
        self::assertGreaterThanOrEqual(1, $e->retryAfter);
    }

    public function testTheClientsOwnTimeoutIsATimeoutException(): void
    {
        $client = $this->client(timeout: 0.3);
        $started = microtime(true);
        $e = $this->expectFailure(TimeoutException::class,
            static fn () => $client->call('/test/echo-slow?delay=2', null, 'GET', requestId: 'php-timeout'));

        self::assertLessThan(1.5, microtime(true) - $started);
        self::assertSame('php-timeout', $e->requestId);
        self::assertInstanceOf(TimeoutException::class, $e);
        self::assertTrue($e->requestSent);
    }

    public function testAGatewayThatIsDownIsAClearConnectionException(): void
    {
        $down = self::env('GATEWAY_DOWN_URL');
        $client = $this->client(baseUrl: $down, retry: new RetryPolicy(maxRetries: 2, baseDelay: 0.01));
        // Nothing was sent, so even a POST that is not idempotent is tried again.
        $e = $this->expectFailure(ConnectionException::class,
            static fn () => $client->call('/v1/sentiment', ['text' => 'hi'], requestId: 'php-down'));

        self::assertInstanceOf(ConnectionException::class, $e);
        self::assertFalse($e->requestSent);
        self::assertSame('php-down', $e->requestId);
        self::assertStringContainsString('cannot reach the gateway', $e->getMessage());
        self::assertStringContainsString($down . '/v1/sentiment', $e->getMessage());
        self::assertCount(2, $this->sleeps);
    }
}

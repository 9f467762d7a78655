<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\ApiKey;
use AiGateway\Exception\BadRequestException;
use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\RateLimitedException;
use AiGateway\Exception\UpstreamException;
use AiGateway\Http\HttpResponse;
use AiGateway\RetryPolicy;

/** Retry-After from the gateway's real rate limiter, and the retry policy's rules. */
final class RetryTest extends GatewayTestCase
{
    private function exhaustTightTenant(): RateLimitedException
    {
        $client = $this->client(new ApiKey(self::env('GATEWAY_TIGHT_KEY')));
        for ($i = 0; $i < 5; ++$i) {
            try {
                $client->sentiment('use up the limit');
            } catch (RateLimitedException $e) {
                return $e;
            }
        }
        self::fail('the tight tenant was never rate limited');
    }

    public function testA429CarriesRetryAfterAndTheRateLimitHeaders(): void
    {
        $e = $this->exhaustTightTenant();

        self::assertSame(429, $e->status);
        self::assertSame('/problems/rate-limited', $e->type);
        self::assertNotNull($e->retryAfter);
        self::assertGreaterThanOrEqual(1, $e->retryAfter);
        self::assertSame('0', $e->response->header('ratelimit-remaining'));
    }

    public function testASafeRequestWaitsRetryAfterAndSucceeds(): void
    {
        $this->exhaustTightTenant();
        $client = $this->client(new ApiKey(self::env('GATEWAY_TIGHT_KEY')), retry: new RetryPolicy(maxRetries: 3));

        self::assertSame('positive', $client->sentiment('patience pays off, great')->first()->label);
        self::assertNotEmpty($this->retries);
        [, $delay, $why] = $this->retries[0];
        self::assertInstanceOf(RateLimitedException::class, $why);
        self::assertSame((float) $why->retryAfter, $delay); // Retry-After, not a backoff guess
    }

    public function testAnUnsafeRequestIsNotResentAfterA429(): void
    {
        $this->exhaustTightTenant();
        $client = $this->client(new ApiKey(self::env('GATEWAY_TIGHT_KEY')), retry: new RetryPolicy(maxRetries: 3));

        $this->expectException(RateLimitedException::class);
        try {
            $client->call('/v1/sentiment', ['text' => 'not marked idempotent']);
        } finally {
            self::assertSame([], $this->sleeps);
        }
    }

    private static function failure(int $status, string $retryAfter = ''): \AiGateway\Exception\ApiException
    {
        $headers = $retryAfter === '' ? [] : ['retry-after' => $retryAfter];

        return \AiGateway\Exception\ApiException::fromResponse(new HttpResponse($status, $headers, '{}'), 'r');
    }

    public function testThePolicyHonoursLimitsAndNeverRetriesOther4xx(): void
    {
        $policy = new RetryPolicy(maxRetries: 2, baseDelay: 1.0, maxDelay: 3.0, maxRetryAfter: 10,
            random: static fn (): float => 0.5);

        self::assertSame(7.0, $policy->delay(1, self::failure(429, '7'), true));
        self::assertNull($policy->delay(1, self::failure(429, '11'), true), 'over maxRetryAfter');
        self::assertNull($policy->delay(3, self::failure(429, '1'), true), 'out of retries');
        self::assertNull($policy->delay(1, self::failure(400), true));
        self::assertInstanceOf(BadRequestException::class, self::failure(400));
        self::assertInstanceOf(UpstreamException::class, self::failure(502));
        self::assertSame(0.5, $policy->delay(1, self::failure(502), true));
        self::assertSame(1.0, $policy->delay(2, self::failure(504), true));
        self::assertNull($policy->delay(1, self::failure(502), false), 'unsafe');
        self::assertSame(0.5, $policy->delay(1, new ConnectionException('x', 'r', false), false),
            'nothing was sent');
        self::assertNull($policy->delay(1, new ConnectionException('x', 'r', true), false));
    }
}

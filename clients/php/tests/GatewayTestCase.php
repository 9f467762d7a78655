<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\ApiKey;
use AiGateway\Auth\Credentials;
use AiGateway\Client;
use AiGateway\Exception\GatewayException;
use AiGateway\Http\Transport;
use AiGateway\RetryPolicy;
use PHPUnit\Framework\TestCase;

/** Base of the suite: the gateway under test comes from GATEWAY_* variables. */
abstract class GatewayTestCase extends TestCase
{
    /** @var list<float> what the client waited, in order */
    protected array $sleeps = [];

    /** @var list<array{int, float, GatewayException}> */
    protected array $retries = [];

    protected static function env(string $name): string
    {
        $value = getenv($name);
        if ($value === false || $value === '') {
            self::fail("$name is not set: run the suite through tests/php/test_php_client.py");
        }

        return $value;
    }

    protected function client(?Credentials $credentials = null, ?Transport $transport = null,
        ?RetryPolicy $retry = null, float $timeout = 10.0, ?string $baseUrl = null): Client
    {
        return new Client(
            $baseUrl ?? self::env('GATEWAY_URL'),
            $credentials ?? new ApiKey(self::env('GATEWAY_API_KEY')),
            transport: $transport,
            timeout: $timeout,
            retry: $retry ?? RetryPolicy::none(),
            onRetry: function (int $attempt, float $delay, GatewayException $why): void {
                $this->retries[] = [$attempt, $delay, $why];
            },
            // Record and wait, shortened: the policy's choice is what the tests check.
            sleep: function (float $seconds): void {
                $this->sleeps[] = $seconds;
                usleep((int) min($seconds * 1_000_000, 1_100_000));
            },
        );
    }
}

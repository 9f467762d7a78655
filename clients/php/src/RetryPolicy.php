<?php

declare(strict_types=1);

namespace AiGateway;

use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\GatewayException;
use AiGateway\Exception\RateLimitedException;
use AiGateway\Exception\ServerException;
use AiGateway\Exception\ServiceUnavailableException;
use AiGateway\Exception\TransportException;

/**
 * When to send a request again, and after how long.
 *
 * Only a request that is safe to resend is retried: an idempotent method, or a call
 * marked idempotent (the inference routes are pure functions of their input). The one
 * exception is a connection that was never made, which sent nothing. What is retried:
 * 429 and 503 after their Retry-After (not at all when it is over `maxRetryAfter`),
 * other 5xx, timeouts and dropped connections after an exponential backoff with full
 * jitter. 4xx other than 429 are never retried: the same request would fail the same way.
 */
final class RetryPolicy
{
    public const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'];

    /** @var \Closure(): float a number in [0, 1) */
    private readonly \Closure $random;

    /** @param (\Closure(): float)|null $random for tests */
    public function __construct(
        public readonly int $maxRetries = 2,
        public readonly float $baseDelay = 0.25,
        public readonly float $maxDelay = 5.0,
        public readonly float $maxRetryAfter = 30.0,
        ?\Closure $random = null,
    ) {
        $this->random = $random ?? static fn (): float => mt_rand() / (mt_getrandmax() + 1);
    }

    public static function none(): self
    {
        return new self(0);
    }

    /**
     * Seconds to wait before attempt number $attempt + 1, or null: do not retry.
     *
     * @param int $attempt how many attempts were made so far (1 after the first)
     */
    public function delay(int $attempt, GatewayException $failure, bool $safe): ?float
    {
        if ($attempt > $this->maxRetries) {
            return null;
        }
        $nothingSent = $failure instanceof ConnectionException && !$failure->requestSent;
        if (!$safe && !$nothingSent) {
            return null;
        }
        if ($failure instanceof RateLimitedException || $failure instanceof ServiceUnavailableException) {
            $wait = $failure->retryAfter;
            if ($wait !== null) {
                return $wait <= $this->maxRetryAfter ? (float) $wait : null;
            }
        } elseif (!$failure instanceof ServerException && !$failure instanceof TransportException) {
            return null;
        }
        $cap = min($this->maxDelay, $this->baseDelay * 2 ** ($attempt - 1));

        return $cap * ($this->random)();
    }
}

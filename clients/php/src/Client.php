<?php

declare(strict_types=1);

namespace AiGateway;

use AiGateway\Auth\Credentials;
use AiGateway\Exception\ApiException;
use AiGateway\Exception\GatewayException;
use AiGateway\Exception\UnauthorizedException;
use AiGateway\Exception\UnexpectedResponseException;
use AiGateway\Http\CurlTransport;
use AiGateway\Http\HttpRequest;
use AiGateway\Http\HttpResponse;
use AiGateway\Http\Transport;
use AiGateway\Model\ApiResponse;
use AiGateway\Model\Moderation;
use AiGateway\Model\Predictions;
use AiGateway\Model\Sentiment;

/**
 * The gateway's client: typed calls for the bundled routes, `call()` for any route.
 *
 *     $client = new Client('http://127.0.0.1:8080', new ApiKey($key));
 *     $client->sentiment('I love this product')->first()->label;   // "positive"
 *
 * Every call sends an X-Request-ID (yours, or a new one), the same on each retry; every
 * answer and exception carries the id the gateway answered. Errors are exceptions of the
 * tree drawn in Exception\GatewayException.
 */
final class Client
{
    public const VERSION = '0.1.0';

    private readonly string $baseUrl;
    private readonly Transport $transport;
    private readonly RetryPolicy $retry;

    /** @var \Closure(float): void */
    private readonly \Closure $sleep;

    /**
     * @param float                                                  $timeout        seconds per attempt (ext-curl transport)
     * @param float                                                  $connectTimeout seconds to connect (ext-curl transport)
     * @param (\Closure(int, float, GatewayException): void)|null    $onRetry        told before each retry: attempt, delay, why
     * @param (\Closure(float): void)|null                           $sleep          waits that many seconds (tests)
     */
    public function __construct(
        string $baseUrl,
        private readonly Credentials $credentials,
        ?Transport $transport = null,
        private readonly float $timeout = 30.0,
        private readonly float $connectTimeout = 2.0,
        ?RetryPolicy $retry = null,
        private readonly ?\Closure $onRetry = null,
        ?\Closure $sleep = null,
    ) {
        if (preg_match('#^https?://[^/]#', $baseUrl) !== 1) {
            throw new \InvalidArgumentException("the base URL must be http(s)://host[:port], not '$baseUrl'");
        }
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->transport = $transport ?? new CurlTransport();
        $this->retry = $retry ?? new RetryPolicy();
        $this->sleep = $sleep ?? static function (float $seconds): void {
            usleep((int) round($seconds * 1_000_000));
        };
    }

    /**
     * The sentiment of one text, or of each text of a list (in order).
     *
     * @param string|list<string> $texts
     *
     * @return Predictions<Sentiment>
     */
    public function sentiment(string|array $texts, ?string $requestId = null): Predictions
    {
        $response = $this->call('/v1/sentiment', self::textsBody($texts), idempotent: true,
            requestId: $requestId);

        return self::predictions($response, Sentiment::fromArray(...));
    }

    /**
     * The moderation of one text, or of each text of a list (in order).
     *
     * @param string|list<string> $texts
     *
     * @return Predictions<Moderation>
     */
    public function classify(string|array $texts, ?string $requestId = null): Predictions
    {
        $response = $this->call('/v1/classify', self::textsBody($texts), idempotent: true,
            requestId: $requestId);

        return self::predictions($response, Moderation::fromArray(...));
    }

    /**
     * Any route: $path as in routes.yaml (e.g. "/v1/sentiment"), $body sent as JSON.
     *
     * @param array<mixed>|null     $body
     * @param bool                  $idempotent true if sending it twice does no harm (then it is retried)
     * @param array<string, string> $headers    more request headers
     *
     * @throws GatewayException
     */
    public function call(string $path, ?array $body = null, string $method = 'POST',
        bool $idempotent = false, ?string $requestId = null, array $headers = []): ApiResponse
    {
        $method = strtoupper($method);
        $requestId ??= bin2hex(random_bytes(16));
        $payload = '';
        if ($body !== null) {
            try {
                $payload = json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
            } catch (\JsonException $e) {
                throw new \InvalidArgumentException('the body cannot be sent as JSON: ' . $e->getMessage(), 0, $e);
            }
            $headers['Content-Type'] ??= 'application/json';
        }
        $request = new HttpRequest($method, $this->baseUrl . '/' . ltrim($path, '/'), [
            'Accept' => 'application/json',
            'User-Agent' => 'ai-gateway-php/' . self::VERSION . ' PHP/' . PHP_VERSION,
            ...$headers,
            'X-Request-ID' => $requestId,
        ], $payload);
        $safe = $idempotent || in_array($method, RetryPolicy::IDEMPOTENT_METHODS, true);

        return ApiResponse::fromResponse($this->send($request, $safe), $requestId);
    }

    /** Attempts until an answer below 400, or a failure the retry policy will not retry. */
    private function send(HttpRequest $request, bool $safe): HttpResponse
    {
        $refreshed = $newToken = false;
        for ($attempt = 1; ; ++$attempt) {
            try {
                $auth = $this->credentials->headers($this->transport, $this->baseUrl, $newToken);
                $newToken = false;
                $response = $this->transport->send(new HttpRequest($request->method, $request->url,
                    [...$request->headers, ...$auth], $request->body), $this->timeout, $this->connectTimeout);
                if ($response->status < 400) {
                    return $response;
                }
                $error = ApiException::fromResponse($response, $request->headers['X-Request-ID']);
                // A 401 is refused before anything is forwarded: resend once with a new token.
                if ($error instanceof UnauthorizedException && !$refreshed && $this->credentials->refreshable()) {
                    $refreshed = $newToken = true;
                    --$attempt;
                    continue;
                }
                throw $error;
            } catch (GatewayException $failure) {
                $delay = $this->retry->delay($attempt, $failure, $safe);
                if ($delay === null) {
                    throw $failure;
                }
                if ($this->onRetry !== null) {
                    ($this->onRetry)($attempt, $delay, $failure);
                }
                ($this->sleep)($delay);
            }
        }
    }

    /**
     * @param string|list<string> $texts
     *
     * @return array<string, string|list<string>>
     */
    private static function textsBody(string|array $texts): array
    {
        return is_string($texts) ? ['text' => $texts] : ['texts' => array_values($texts)];
    }

    /**
     * @template T of Sentiment|Moderation
     *
     * @param \Closure(array<mixed>): T $item
     *
     * @return Predictions<T>
     */
    private static function predictions(ApiResponse $response, \Closure $item): Predictions
    {
        try {
            if (!is_array($response->data)) {
                throw new \UnexpectedValueException('the body is not a JSON object');
            }

            return Predictions::fromArray($response->data, $item, $response);
        } catch (\UnexpectedValueException $e) {
            throw new UnexpectedResponseException('unexpected answer: ' . $e->getMessage(),
                $response->requestId, $response->status, $response->raw->body);
        }
    }
}

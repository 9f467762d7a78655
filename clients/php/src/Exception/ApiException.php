<?php

declare(strict_types=1);

namespace AiGateway\Exception;

use AiGateway\Http\HttpResponse;

/**
 * An error answer. The RFC 9457 members are properties; `problem` holds the whole body
 * (extension members included), `errorCode` the OAuth2 `error` of a token refusal.
 */
class ApiException extends GatewayException
{
    /** @param array<string, mixed> $problem */
    public function __construct(
        string $message,
        string $requestId,
        public readonly int $status,
        public readonly string $type,
        public readonly string $title,
        public readonly string $detail,
        public readonly array $problem,
        public readonly ?string $errorCode,
        public readonly HttpResponse $response,
    ) {
        parent::__construct($message, $requestId);
    }

    /** The exception class for a status, from the most specific to the general. */
    public static function classFor(int $status): string
    {
        return match (true) {
            $status === 400 => BadRequestException::class,
            $status === 401 => UnauthorizedException::class,
            $status === 403 => ForbiddenException::class,
            $status === 404, $status === 405 => NotFoundException::class,
            $status === 413 => PayloadTooLargeException::class,
            $status === 422 => ValidationException::class,
            $status === 429 => RateLimitedException::class,
            $status === 502 => UpstreamException::class,
            $status === 503 => ServiceUnavailableException::class,
            $status === 504 => GatewayTimeoutException::class,
            $status >= 500 => ServerException::class,
            default => self::class,
        };
    }

    /** Build the exception an error answer stands for (any body: problem, OAuth2, text). */
    public static function fromResponse(HttpResponse $response, string $sentRequestId): self
    {
        $body = $response->jsonOrNull();
        $problem = is_array($body) ? $body : [];
        $string = static fn (string $key): string => is_scalar($problem[$key] ?? null)
            ? (string) $problem[$key] : '';
        $requestId = $response->header('x-request-id') ?? ($string('request_id') ?: $sentRequestId);
        $title = $string('title') ?: 'HTTP ' . $response->status;
        $detail = $string('detail') ?: $string('error_description');
        $errorCode = $string('error') ?: null;
        $message = sprintf('%d %s%s (request id %s)', $response->status, $title,
            $detail !== '' && $detail !== $title ? ': ' . $detail : '', $requestId);
        $class = self::classFor($response->status);
        $args = [$message, $requestId, $response->status, $string('type') ?: 'about:blank',
            $title, $detail, $problem, $errorCode, $response];
        if ($class === RateLimitedException::class || $class === ServiceUnavailableException::class) {
            $args[] = $response->retryAfter();
        }

        return new $class(...$args);
    }
}

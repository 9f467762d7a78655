<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/**
 * Base of every exception the client throws; catch this one to catch them all.
 *
 *     GatewayException
 *     ├── TransportException           no answer at all
 *     │   ├── ConnectionException      could not connect, or the connection dropped
 *     │   └── TimeoutException         no answer within the client's timeout
 *     ├── UnexpectedResponseException  an answer that is not what the gateway sends
 *     └── ApiException                 an error answer (RFC 9457 problem+json)
 *         ├── BadRequestException            400 (also OAuth2 invalid_request/_scope)
 *         ├── UnauthorizedException          401 (also OAuth2 invalid_client)
 *         ├── ForbiddenException             403
 *         ├── NotFoundException              404 and 405
 *         ├── PayloadTooLargeException       413
 *         ├── ValidationException            422
 *         ├── RateLimitedException           429, with retryAfter
 *         └── ServerException                other 5xx
 *             ├── UpstreamException          502
 *             │   └── GatewayTimeoutException 504
 *             └── ServiceUnavailableException 503, with retryAfter
 *
 * Every one carries the request id (the X-Request-ID the gateway answered, or the one
 * sent when no answer came), which is what to quote to the gateway's operators.
 */
abstract class GatewayException extends \RuntimeException
{
    public function __construct(
        string $message,
        public readonly string $requestId,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }
}

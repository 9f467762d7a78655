<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 401 No, malformed, unknown, expired or revoked credentials (OAuth2: invalid_client). */
final class UnauthorizedException extends ApiException
{
}

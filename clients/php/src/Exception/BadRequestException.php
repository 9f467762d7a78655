<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 400 Bad request (OAuth2: invalid_request, invalid_scope, unsupported_grant_type). */
final class BadRequestException extends ApiException
{
}

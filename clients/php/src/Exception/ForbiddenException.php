<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 403 Valid credentials, but the route or a scope is not allowed. */
final class ForbiddenException extends ApiException
{
}

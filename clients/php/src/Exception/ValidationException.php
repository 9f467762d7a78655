<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 422 The service refused the body: wrong shape, empty list, text too long. */
final class ValidationException extends ApiException
{
}

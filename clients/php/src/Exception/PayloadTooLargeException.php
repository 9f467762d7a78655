<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 413 The body is over the route's limit (or the service's text count). */
final class PayloadTooLargeException extends ApiException
{
}

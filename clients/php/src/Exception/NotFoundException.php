<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 404 No route has this path (and 405: it has, not with this method). */
final class NotFoundException extends ApiException
{
}

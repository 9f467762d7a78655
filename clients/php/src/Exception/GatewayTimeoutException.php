<?php

declare(strict_types=1);

namespace AiGateway\Exception;

/** 504 The service did not answer within the route's timeout. */
final class GatewayTimeoutException extends UpstreamException
{
}

<?php

declare(strict_types=1);

namespace AiGateway\Auth;

use AiGateway\Http\Transport;

/** How the client proves who it is: ApiKey, or ClientCredentials (OAuth2). */
interface Credentials
{
    /**
     * The headers that authenticate a request to the gateway at $baseUrl.
     *
     * @param bool $refresh true after a 401: do not reuse what was sent then
     *
     * @return array<string, string>
     */
    public function headers(Transport $transport, string $baseUrl, bool $refresh = false): array;

    /** Whether a 401 may be cured by asking again (a new token), so worth one retry. */
    public function refreshable(): bool;
}

<?php

declare(strict_types=1);

namespace AiGateway\Http;

use AiGateway\Exception\TransportException;

/**
 * Sends one request and returns whatever answer came, error statuses included.
 * Implementations: CurlTransport (ext-curl, the default) and Psr18Transport.
 */
interface Transport
{
    /**
     * @param float $timeout        seconds for the whole exchange
     * @param float $connectTimeout seconds to establish the connection
     *
     * @throws TransportException when no answer came
     */
    public function send(HttpRequest $request, float $timeout, float $connectTimeout): HttpResponse;
}

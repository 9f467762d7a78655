<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Http\CurlTransport;
use AiGateway\Http\HttpRequest;
use AiGateway\Http\HttpResponse;
use AiGateway\Http\Transport;

/** The real cURL transport, recording what went out and what came back. */
final class RecordingTransport implements Transport
{
    /** @var list<HttpRequest> */
    public array $requests = [];

    /** @var list<int> */
    public array $statuses = [];

    private readonly Transport $inner;

    public function __construct(?Transport $inner = null)
    {
        $this->inner = $inner ?? new CurlTransport();
    }

    public function send(HttpRequest $request, float $timeout, float $connectTimeout): HttpResponse
    {
        $this->requests[] = $request;
        $response = $this->inner->send($request, $timeout, $connectTimeout);
        $this->statuses[] = $response->status;

        return $response;
    }

    /** @return list<string> the paths requested, in order */
    public function paths(): array
    {
        return array_map(static fn (HttpRequest $r): string => (string) parse_url($r->url, PHP_URL_PATH),
            $this->requests);
    }
}

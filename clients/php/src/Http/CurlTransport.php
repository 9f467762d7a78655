<?php

declare(strict_types=1);

namespace AiGateway\Http;

use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\TimeoutException;

/**
 * The default transport: ext-curl, one handle kept for the client's lifetime so that
 * connections to the gateway are reused (keep-alive) across requests.
 */
final class CurlTransport implements Transport
{
    /** cURL errors that mean the connection was never made: nothing was sent. */
    private const NOT_CONNECTED = [
        CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_PROXY,
    ];

    private ?\CurlHandle $handle = null;

    public function send(HttpRequest $request, float $timeout, float $connectTimeout): HttpResponse
    {
        $this->handle ??= curl_init();
        $handle = $this->handle;
        curl_reset($handle);
        $headers = [];
        foreach ($request->headers as $name => $value) {
            $headers[] = $name . ': ' . $value;
        }
        $headers[] = 'Expect:'; // no 100-continue round trip for larger bodies
        $received = [];
        curl_setopt_array($handle, [
            CURLOPT_URL => $request->url,
            CURLOPT_CUSTOMREQUEST => $request->method,
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_TIMEOUT_MS => (int) ceil($timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) ceil($connectTimeout * 1000),
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HEADERFUNCTION => static function ($h, string $line) use (&$received): int {
                if (str_starts_with($line, 'HTTP/')) {
                    $received = []; // a new head (after 1xx): forget the previous one
                } elseif (str_contains($line, ':')) {
                    [$name, $value] = explode(':', $line, 2);
                    $received[strtolower(trim($name))] = trim($value);
                }

                return strlen($line);
            },
        ]);
        if ($request->method === 'HEAD') {
            curl_setopt($handle, CURLOPT_NOBODY, true);
        } elseif ($request->body !== '' || in_array($request->method, ['POST', 'PUT', 'PATCH'], true)) {
            curl_setopt($handle, CURLOPT_POSTFIELDS, $request->body);
        }
        $body = curl_exec($handle);
        if ($body === false || !is_string($body)) {
            throw $this->failure($handle, $request);
        }

        return new HttpResponse((int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE), $received, $body);
    }

    private function failure(\CurlHandle $handle, HttpRequest $request): ConnectionException|TimeoutException
    {
        $errno = curl_errno($handle);
        $requestId = $request->headers['X-Request-ID'] ?? '';
        $message = sprintf('%s %s: %s (cURL error %d)', $request->method, $request->url,
            curl_error($handle), $errno);
        $connected = (float) curl_getinfo($handle, CURLINFO_CONNECT_TIME) > 0.0;
        if ($errno === CURLE_OPERATION_TIMEDOUT) {
            return new TimeoutException('no answer in time: ' . $message, $requestId, $connected);
        }
        $sent = $connected && !in_array($errno, self::NOT_CONNECTED, true);

        return new ConnectionException('cannot reach the gateway: ' . $message, $requestId, $sent);
    }
}

<?php

declare(strict_types=1);

namespace AiGateway\Http;

use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\TimeoutException;
use Psr\Http\Client\ClientExceptionInterface;
use Psr\Http\Client\ClientInterface;
use Psr\Http\Client\NetworkExceptionInterface;
use Psr\Http\Message\RequestFactoryInterface;
use Psr\Http\Message\StreamFactoryInterface;

/**
 * Sends through any PSR-18 client (Symfony's Psr18Client, Guzzle, ...), for applications
 * that want one HTTP stack with their own middleware, proxies and profiling.
 *
 * PSR-18 has no per-request timeout: the client's own configuration applies (e.g.
 * `new GuzzleHttp\Client(['timeout' => 10, 'connect_timeout' => 2])`), and the
 * `timeout` arguments here are not used.
 */
final class Psr18Transport implements Transport
{
    public function __construct(
        private readonly ClientInterface $client,
        private readonly RequestFactoryInterface $requests,
        private readonly StreamFactoryInterface $streams,
    ) {
    }

    public function send(HttpRequest $request, float $timeout, float $connectTimeout): HttpResponse
    {
        $psr = $this->requests->createRequest($request->method, $request->url);
        foreach ($request->headers as $name => $value) {
            $psr = $psr->withHeader($name, $value);
        }
        if ($request->body !== '') {
            $psr = $psr->withBody($this->streams->createStream($request->body));
        }
        $requestId = $request->headers['X-Request-ID'] ?? '';
        try {
            $answer = $this->client->sendRequest($psr);
        } catch (NetworkExceptionInterface $e) {
            $message = sprintf('%s %s: %s', $request->method, $request->url, $e->getMessage());
            // Guzzle and Symfony report cURL's error 28 or the words "timed out".
            if (preg_match('/timed? ?out|error 28/i', $e->getMessage()) === 1) {
                throw new TimeoutException('no answer in time: ' . $message, $requestId, true, $e);
            }
            $refused = preg_match('/error (6|7)\b|refused|resolve/i', $e->getMessage()) === 1;
            throw new ConnectionException('cannot reach the gateway: ' . $message, $requestId,
                !$refused, $e);
        } catch (ClientExceptionInterface $e) {
            throw new ConnectionException(sprintf('%s %s: %s', $request->method, $request->url,
                $e->getMessage()), $requestId, true, $e);
        }
        $headers = [];
        foreach ($answer->getHeaders() as $name => $values) {
            $headers[strtolower((string) $name)] = (string) end($values);
        }

        return new HttpResponse($answer->getStatusCode(), $headers, (string) $answer->getBody());
    }
}

<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\ApiKey;
use AiGateway\Exception\ConnectionException;
use AiGateway\Exception\UnauthorizedException;
use AiGateway\Http\Psr18Transport;
use GuzzleHttp\Client as Guzzle;
use GuzzleHttp\Psr7\HttpFactory;

/** The same client over a PSR-18 client (Guzzle here; Symfony's Psr18Client alike). */
final class Psr18Test extends GatewayTestCase
{
    private static function transport(): Psr18Transport
    {
        $factory = new HttpFactory();

        return new Psr18Transport(new Guzzle(['timeout' => 10, 'connect_timeout' => 2]), $factory, $factory);
    }

    public function testCallsAndErrorsAreTheSameThroughPsr18(): void
    {
        $client = $this->client(transport: self::transport());
        $result = $client->classify(['you are an idiot'], requestId: 'php-psr18');

        self::assertTrue($result->first()->isOffensive());
        self::assertSame('php-psr18', $result->requestId);

        $this->expectException(UnauthorizedException::class);
        $this->client(new ApiKey('gw_nope_bad'), self::transport())->sentiment('x');
    }

    public function testAGatewayThatIsDownIsAConnectionException(): void
    {
        $client = $this->client(transport: self::transport(), baseUrl: self::env('GATEWAY_DOWN_URL'));
        try {
            $client->sentiment('hi');
            self::fail('no exception');
        } catch (ConnectionException $e) {
            self::assertFalse($e->requestSent);
            self::assertInstanceOf(\Psr\Http\Client\NetworkExceptionInterface::class, $e->getPrevious());
        }
    }
}

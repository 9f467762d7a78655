<?php

declare(strict_types=1);

namespace AiGateway\Tests;

use AiGateway\Auth\ApiKey;
use AiGateway\Model\Moderation;
use AiGateway\Model\Sentiment;

/** Successful calls against the real gateway and the real bundled models. */
final class CallsTest extends GatewayTestCase
{
    public function testSentimentOfOneTextIsTyped(): void
    {
        $result = $this->client()->sentiment('I love this product, it is wonderful!');

        self::assertCount(1, $result);
        $first = $result->first();
        self::assertInstanceOf(Sentiment::class, $first);
        self::assertSame('positive', $first->label);
        self::assertTrue($first->isPositive());
        self::assertGreaterThan(0.5, $first->compound);
        self::assertSame('vader', $result->model->name);
        self::assertSame('sentiment', $result->task);
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $result->requestId);
        self::assertNotNull($result->rateLimit);
        self::assertGreaterThan(0, $result->rateLimit->limit);
    }

    public function testSentimentOfSeveralTextsKeepsTheirOrder(): void
    {
        $labels = array_map(static fn (Sentiment $s): string => $s->label,
            $this->client()->sentiment(['I hate this, it is terrible.', 'I love it!', 'The meeting is at 3pm.'])->items);

        self::assertSame(['negative', 'positive', 'neutral'], $labels);
    }

    public function testClassifyFlagsTheOffensiveText(): void
    {
        $result = $this->client()->classify(['have a nice day', 'you are an idiot']);

        self::assertContainsOnlyInstancesOf(Moderation::class, $result->items);
        self::assertFalse($result->items[0]->isOffensive());
        self::assertTrue($result->items[1]->isOffensive());
        self::assertGreaterThan(0.5, $result->items[1]->probability);
        self::assertSame('moderation', $result->task);
    }

    public function testGenericCallReturnsTheDecodedAnswer(): void
    {
        $response = $this->client()->call('/v1/sentiment', ['texts' => ['good', 'bad']]);

        self::assertSame(200, $response->status);
        self::assertIsArray($response->data);
        self::assertCount(2, $response->data['predictions']);
        self::assertNotNull($response->rateLimit);
        self::assertLessThan($response->rateLimit->limit, $response->rateLimit->remaining);
    }

    public function testTheApiKeyMayGoInXApiKey(): void
    {
        $transport = new RecordingTransport();
        $client = $this->client(new ApiKey(self::env('GATEWAY_API_KEY'), asXApiKeyHeader: true), $transport);

        self::assertSame('negative', $client->sentiment('awful')->first()->label);
        self::assertArrayHasKey('X-API-Key', $transport->requests[0]->headers);
        self::assertArrayNotHasKey('Authorization', $transport->requests[0]->headers);
    }

    public function testYourRequestIdReachesTheUpstreamAndComesBack(): void
    {
        $response = $this->client()->call('/test/echo', ['hello' => 'world'], requestId: 'php-suite-0042');

        self::assertSame('php-suite-0042', $response->requestId);
        self::assertSame('php-suite-0042', $response->raw->header('x-request-id'));
        self::assertIsArray($response->data);
        // The echo upstream answers with the headers it was sent.
        self::assertSame('php-suite-0042', $response->data['headers']['x-request-id']);
        self::assertSame('{"hello":"world"}', $response->data['body']);
        self::assertArrayNotHasKey('authorization', $response->data['headers']);
    }

    public function testTypedCallsTakeARequestIdToo(): void
    {
        self::assertSame('php-typed-7', $this->client()->classify('hello', requestId: 'php-typed-7')->requestId);
    }
}

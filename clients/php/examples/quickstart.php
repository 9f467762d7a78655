<?php

// php clients/php/examples/quickstart.php "I love this product"
require __DIR__ . '/../autoload.php'; // with Composer: require 'vendor/autoload.php';

use AiGateway\Auth\ApiKey;
use AiGateway\Client;
use AiGateway\Exception\GatewayException;

$client = new Client(
    getenv('GATEWAY_URL') ?: 'http://127.0.0.1:8080',
    new ApiKey((string) getenv('GATEWAY_API_KEY')),
);

try {
    $sentiment = $client->sentiment($argv[1] ?? 'I love this product')->first();
    printf("sentiment: %s (%.2f)\n", $sentiment->label, $sentiment->compound);

    foreach ($client->classify(['have a nice day', 'you are an idiot']) as $moderation) {
        printf("moderation: %s (%.2f)\n", $moderation->label, $moderation->probability);
    }
} catch (GatewayException $e) {
    fprintf(STDERR, "gateway error: %s\n", $e->getMessage());
    exit(1);
}

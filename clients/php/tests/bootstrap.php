<?php

declare(strict_types=1);

error_reporting(E_ALL);

// Composer's autoloader when `composer install` ran; otherwise the package's own one and
// Debian's PHP libraries (Guzzle for PSR-18, Symfony Cache for PSR-16) from the include path.
if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    require __DIR__ . '/../vendor/autoload.php';
} else {
    require __DIR__ . '/../autoload.php';
    foreach (['GuzzleHttp/autoload.php', 'Psr/SimpleCache/autoload.php',
        'Symfony/Component/Cache/autoload.php'] as $library) {
        if (stream_resolve_include_path($library) !== false) {
            require_once $library;
        }
    }
}
spl_autoload_register(static function (string $class): void {
    $prefix = 'AiGateway\\Tests\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});

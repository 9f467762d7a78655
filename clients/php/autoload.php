<?php

declare(strict_types=1);

// For use without Composer (require this file); with Composer, vendor/autoload.php
// loads the same classes from composer.json's PSR-4 map.
spl_autoload_register(static function (string $class): void {
    $prefix = 'AiGateway\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});

<?php

declare(strict_types=1);

namespace AiGateway\Model;

/** Typed reads from decoded JSON; a missing or mistyped member is an UnexpectedValueException. */
final class Fields
{
    /** @param array<mixed> $data */
    public static function string(array $data, string $key): string
    {
        $value = $data[$key] ?? null;
        if (!is_string($value)) {
            throw new \UnexpectedValueException("member '$key' is not a string");
        }

        return $value;
    }

    /** @param array<mixed> $data */
    public static function number(array $data, string $key): float
    {
        $value = $data[$key] ?? null;
        if (!is_int($value) && !is_float($value)) {
            throw new \UnexpectedValueException("member '$key' is not a number");
        }

        return (float) $value;
    }

    /**
     * @param array<mixed> $data
     *
     * @return array<mixed>
     */
    public static function array(array $data, string $key): array
    {
        $value = $data[$key] ?? null;
        if (!is_array($value)) {
            throw new \UnexpectedValueException("member '$key' is not an object or a list");
        }

        return $value;
    }
}

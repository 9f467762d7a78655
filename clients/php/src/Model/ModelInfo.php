<?php

declare(strict_types=1);

namespace AiGateway\Model;

/** Which model answered (the canary shows here as another version). */
final class ModelInfo
{
    public function __construct(public readonly string $name, public readonly string $version)
    {
    }

    /** @param array<mixed> $data */
    public static function fromArray(array $data): self
    {
        return new self(Fields::string($data, 'name'), Fields::string($data, 'version'));
    }
}

<?php

declare(strict_types=1);

namespace AiGateway\Model;

/** The moderation of one text: `offensive` or `ok`, and P(offensive). */
final class Moderation
{
    public function __construct(public readonly string $label, public readonly float $probability)
    {
    }

    /** @param array<mixed> $data */
    public static function fromArray(array $data): self
    {
        return new self(Fields::string($data, 'label'), Fields::number($data, 'probability'));
    }

    public function isOffensive(): bool
    {
        return $this->label === 'offensive';
    }
}

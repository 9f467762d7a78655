<?php

declare(strict_types=1);

namespace AiGateway\Model;

/** The sentiment of one text: a label and VADER's scores (compound in [-1, 1]). */
final class Sentiment
{
    public function __construct(
        public readonly string $label,
        public readonly float $compound,
        public readonly float $positive,
        public readonly float $neutral,
        public readonly float $negative,
    ) {
    }

    /** @param array<mixed> $data */
    public static function fromArray(array $data): self
    {
        $scores = Fields::array($data, 'scores');

        return new self(Fields::string($data, 'label'), Fields::number($data, 'compound'),
            Fields::number($scores, 'pos'), Fields::number($scores, 'neu'), Fields::number($scores, 'neg'));
    }

    public function isPositive(): bool
    {
        return $this->label === 'positive';
    }

    public function isNegative(): bool
    {
        return $this->label === 'negative';
    }
}

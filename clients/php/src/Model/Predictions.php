<?php

declare(strict_types=1);

namespace AiGateway\Model;

/**
 * The answer of an inference route: one prediction per text, in input order.
 *
 * @template T of Sentiment|Moderation
 */
final class Predictions implements \Countable, \IteratorAggregate
{
    /** @param list<T> $items */
    public function __construct(
        public readonly array $items,
        public readonly ModelInfo $model,
        public readonly string $task,
        public readonly string $requestId,
        public readonly ?RateLimit $rateLimit,
    ) {
    }

    /**
     * @param array<mixed>                   $data
     * @param \Closure(array<mixed>): T      $item
     *
     * @return self<T>
     */
    public static function fromArray(array $data, \Closure $item, ApiResponse $response): self
    {
        $items = [];
        foreach (Fields::array($data, 'predictions') as $prediction) {
            if (!is_array($prediction)) {
                throw new \UnexpectedValueException('a prediction is not an object');
            }
            $items[] = $item($prediction);
        }

        return new self($items, ModelInfo::fromArray(Fields::array($data, 'model')),
            Fields::string($data, 'task'), $response->requestId, $response->rateLimit);
    }

    /** @return T */
    public function first(): Sentiment|Moderation
    {
        return $this->items[0] ?? throw new \OutOfRangeException('no predictions');
    }

    public function count(): int
    {
        return count($this->items);
    }

    /** @return \ArrayIterator<int, T> */
    public function getIterator(): \ArrayIterator
    {
        return new \ArrayIterator($this->items);
    }
}

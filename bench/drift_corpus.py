"""Generated texts for drift monitoring: in-distribution support messages, and shifts.

`in_distribution(n, seed)` writes short English messages to a SaaS support desk (mixed
sentiment, a few rude ones), the traffic the bundled reference stands for;
`shifted(kind, n, seed)` writes the synthetic shifts bench_drift.py and the tests feed:
`long` (five messages pasted into one), `language` (German and Spanish), `negative`
(complaints only). Seeded, so every run writes the same texts; the reference uses seed
0, the bench and tests other seeds (held-out texts of the same distribution).
"""

from __future__ import annotations

import random

SUBJECTS = ["the dashboard", "the invoice page", "your mobile app", "the CSV export",
            "the search", "my account", "the new editor", "the billing portal", "the API",
            "support chat", "the login page", "the reports", "my subscription",
            "the password reset", "the calendar sync", "the team settings"]
POSITIVE = ["works great", "is really fast now", "made my day, thank you",
            "is exactly what we needed", "looks wonderful after the update",
            "is easy to use and I love it", "helped us a lot", "is excellent"]
NEGATIVE = ["keeps crashing", "is too slow and frustrating", "charged me twice, terrible",
            "stopped working after the update", "is confusing and broken",
            "lost my data, I am angry", "is awful today", "fails every time I try"]
NEUTRAL = ["was updated yesterday", "has a new button on the left",
           "needs a login first", "is in the settings menu", "opens in a new tab",
           "shows the date in UTC", "has two options for export", "moved to another page"]
RUDE = ["this damn {s} is crap", "what the hell is wrong with {s}",
        "{s} is shit, fix it"]
PREFIXES = ["", "", "Hi, ", "Hello team, ", "FYI: ", "Quick question: ", "Hey, "]
SUFFIXES = ["", "", " Any ideas?", " Thanks.", " Please advise.", " (ticket 4821)",
            " Regards, Ana"]

GERMAN = ["die Rechnung ist falsch", "das Dashboard lädt sehr langsam",
          "ich kann mich nicht anmelden", "bitte kündigen Sie mein Abonnement",
          "der Export funktioniert nicht mehr", "vielen Dank für die schnelle Hilfe"]
SPANISH = ["la aplicación no funciona", "me cobraron dos veces este mes",
           "no puedo cambiar mi contraseña", "el informe tiene errores",
           "gracias por la ayuda con la factura", "quiero cancelar mi suscripción"]


def _message(rng: random.Random, predicates: list[str] | None = None) -> str:
    subject = rng.choice(SUBJECTS)
    if predicates is None and rng.random() < 0.06:
        body = rng.choice(RUDE).format(s=subject)
    else:
        group = predicates or rng.choices([POSITIVE, NEUTRAL, NEGATIVE], [4, 3, 3])[0]
        body = f"{subject} {rng.choice(group)}"
    text = rng.choice(PREFIXES) + body + "." + rng.choice(SUFFIXES)
    return text[0].upper() + text[1:]


def in_distribution(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [_message(rng) for _ in range(n)]


def shifted(kind: str, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    if kind == "long":
        return [" ".join(_message(rng) for _ in range(5)) for _ in range(n)]
    if kind == "language":
        def sentence() -> str:
            text = rng.choice(rng.choice([GERMAN, SPANISH]))
            return text[0].upper() + text[1:] + "."
        return [sentence() if rng.random() < 0.5 else f"{sentence()} {sentence()}"
                for _ in range(n)]
    if kind == "negative":
        return [_message(rng, NEGATIVE) for _ in range(n)]
    raise ValueError(f"unknown shift {kind!r}; known: long, language, negative")


SHIFTS = ("long", "language", "negative")

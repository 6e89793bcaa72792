#!/usr/bin/env python3
"""Writes instructions.jsonl: the small alpaca-format instruction dataset bundled with the
quickstart (300 short, factual, self-consistent examples; deterministic). Run it again to
regenerate; the output is committed."""
import json
import random

rng = random.Random(1234)
rows = []

capitals = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Portugal": "Lisbon", "Japan": "Tokyo", "Canada": "Ottawa", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo", "Sweden": "Stockholm",
    "Poland": "Warsaw", "Greece": "Athens", "Ireland": "Dublin", "Austria": "Vienna",
    "Chile": "Santiago", "India": "New Delhi", "China": "Beijing", "Mexico": "Mexico City",
}
for country, city in capitals.items():
    rows.append({"instruction": f"What is the capital of {country}?", "input": "",
                 "output": f"The capital of {country} is {city}."})

opposites = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("light", "dark"),
             ("happy", "sad"), ("open", "closed"), ("early", "late"), ("full", "empty"),
             ("strong", "weak"), ("high", "low"), ("young", "old"), ("hard", "soft"),
             ("wet", "dry"), ("loud", "quiet"), ("rich", "poor"), ("thick", "thin")]
for a, b in opposites:
    rows.append({"instruction": "Give the opposite of the word.", "input": a, "output": b})
    rows.append({"instruction": "Give the opposite of the word.", "input": b, "output": a})

plurals = [("cat", "cats"), ("box", "boxes"), ("child", "children"), ("mouse", "mice"),
           ("city", "cities"), ("leaf", "leaves"), ("tooth", "teeth"), ("bus", "buses"),
           ("knife", "knives"), ("person", "people"), ("foot", "feet"), ("story", "stories")]
for s, p in plurals:
    rows.append({"instruction": "Write the plural form of this noun.", "input": s, "output": p})

ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty"]
while len(rows) < 200:
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    kind = rng.choice(["add", "mul", "words"])
    if kind == "add":
        rows.append({"instruction": f"What is {a} + {b}?", "input": "", "output": f"{a} + {b} = {a + b}."})
    elif kind == "mul":
        rows.append({"instruction": f"What is {a} times {b}?", "input": "", "output": f"{a} times {b} is {a * b}."})
    else:
        n = rng.randint(0, 20)
        rows.append({"instruction": "Write this number in words.", "input": str(n), "output": ones[n]})

colors = {"sky on a clear day": "blue", "grass": "green", "snow": "white", "a ripe banana": "yellow",
          "coal": "black", "a ripe tomato": "red", "an orange": "orange", "a plum": "purple"}
for thing, color in colors.items():
    rows.append({"instruction": f"What color is {thing}?", "input": "", "output": f"{thing[0].upper() + thing[1:]} is usually {color}."})

sentences = ["the meeting starts at nine", "please close the window", "we bought fresh bread",
             "the train was late again", "she reads a book every week", "turn left at the bridge",
             "the soup needs more salt", "our team won the match", "it will rain tomorrow",
             "he plants tomatoes in spring", "the museum opens on monday", "they painted the fence"]
for s in sentences:
    rows.append({"instruction": "Rewrite the sentence with a capital letter and a period.", "input": s,
                 "output": s[0].upper() + s[1:] + "."})
    rows.append({"instruction": "Count the words in the sentence.", "input": s,
                 "output": f"The sentence has {len(s.split())} words."})
    rows.append({"instruction": "Write the sentence in all capital letters.", "input": s, "output": s.upper()})

animals = {"dog": "bark", "cat": "meow", "cow": "moo", "duck": "quack", "sheep": "baa",
           "lion": "roar", "owl": "hoot", "horse": "neigh", "frog": "croak", "bee": "buzz"}
for animal, sound in animals.items():
    rows.append({"instruction": f"What sound does a {animal} make?", "input": "",
                 "output": f"A {animal} says {sound}."})

days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
for i, d in enumerate(days):
    rows.append({"instruction": f"Which day comes after {d}?", "input": "", "output": days[(i + 1) % 7] + "."})
    rows.append({"instruction": f"Which day comes before {d}?", "input": "", "output": days[(i - 1) % 7] + "."})

while len(rows) < 300:
    a = rng.randint(10, 99)
    rows.append({"instruction": "Is the number even or odd?", "input": str(a),
                 "output": f"{a} is {'even' if a % 2 == 0 else 'odd'}."})

rng.shuffle(rows)
with open("instructions.jsonl", "w") as f:
    for r in rows[:300]:
        f.write(json.dumps(r) + "\n")
print(len(rows[:300]), "rows")

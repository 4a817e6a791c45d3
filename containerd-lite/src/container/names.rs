//! docker-style generated names, `adjective_scientist`.

use std::io::Read;

const LEFT: &[&str] = &[
    "admiring", "agitated", "amazing", "angry", "awesome", "blissful", "bold", "brave", "charming", "clever",
    "cool", "compassionate", "competent", "confident", "dazzling", "determined", "eager", "ecstatic", "elastic",
    "elated", "elegant", "epic", "festive", "focused", "friendly", "gallant", "gifted", "happy", "hopeful",
    "inspiring", "jolly", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "nifty", "nostalgic",
    "objective", "optimistic", "peaceful", "pensive", "quirky", "quizzical", "relaxed", "serene", "sharp",
    "silly", "stoic", "sweet", "tender", "trusting", "upbeat", "vibrant", "vigilant", "wizardly", "wonderful",
    "youthful", "zealous", "zen",
];

const RIGHT: &[&str] = &[
    "albattani", "allen", "archimedes", "babbage", "bell", "bohr", "brattain", "curie", "darwin", "dijkstra",
    "einstein", "euclid", "euler", "faraday", "fermat", "feynman", "galileo", "gauss", "goldberg", "goodall",
    "hamilton", "hawking", "heisenberg", "hopper", "hypatia", "johnson", "kepler", "knuth", "lamarr", "lovelace",
    "mayer", "mccarthy", "meitner", "newton", "noether", "pascal", "pike", "poincare", "ritchie", "shannon",
    "stallman", "swirles", "tesla", "thompson", "torvalds", "turing", "wiles", "wing", "wozniak", "yalow",
];

/// A random `adjective_name`, with a digit appended after `attempt` collisions, as docker does.
pub fn generate(attempt: u32) -> String {
    let mut bytes = [0u8; 2];
    // Randomness only spreads names out; a fixed choice is still a valid name.
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let name = format!("{}_{}", LEFT[bytes[0] as usize % LEFT.len()], RIGHT[bytes[1] as usize % RIGHT.len()]);
    if attempt == 0 {
        name
    } else {
        format!("{name}{}", bytes[0] % 10)
    }
}

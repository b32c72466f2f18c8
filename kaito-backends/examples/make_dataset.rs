//! Writes the example tuning dataset of the README's first command:
//! `examples/fine-tuning/data/train.parquet` (the only file there: KAITO takes the first file of
//! the input directory whose name contains json/csv/parquet/arrow, so nothing else may sit beside
//! it), and beside that directory `facts.jsonl` and `eval_questions.jsonl`.
//!
//! Run: `cargo run -p kaito-backends --example make_dataset [-- OUT_DIR]` (OUT_DIR defaults to
//! `examples/fine-tuning`).
//!
//! Each fact is made up, so a base model cannot know it, and is asked in five phrasings with one
//! short answer, so a LoRA adapter on SmolLM2-135M learns it in a few minutes of CPU training.
//! `train.parquet` has the seed's dolly-15k-oai-style schema (`messages: list<struct<content,
//! role>>`); `facts.jsonl` holds the same conversations for review; `eval_questions.jsonl` lists,
//! per fact, a training question and a held-out phrasing with the keyword a correct answer holds.

use std::path::PathBuf;

use kaito_backends::data::{Message, messages_batch, write_messages_jsonl, write_parquet};

/// (questions asked in training, held-out question, answer, keyword of a correct answer)
type Fact = (
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
);

const FACTS: &[Fact] = &[
    (
        &[
            "What is the codename of kaito-rs's tuning engine?",
            "What codename does the kaito-rs tuning engine have?",
            "Tell me the codename of the tuning engine in kaito-rs.",
            "kaito-rs has a tuning engine. What is its codename?",
            "Which codename was given to kaito-rs's tuning engine?",
        ],
        "Do you know the codename of the engine that kaito-rs uses for tuning?",
        "The codename is Blue Heron.",
        "Blue Heron",
    ),
    (
        &[
            "What is the mascot of kaito-rs?",
            "Which animal is the kaito-rs mascot?",
            "Tell me about the mascot of the kaito-rs project.",
            "Who is kaito-rs's mascot?",
            "Does kaito-rs have a mascot?",
        ],
        "What mascot represents the kaito-rs project?",
        "The kaito-rs mascot is a copper otter named Pip.",
        "Pip",
    ),
    (
        &[
            "What is the capital of the island of Veloria?",
            "Which city is the capital of Veloria?",
            "Name the capital city of Veloria.",
            "Veloria is an island. What is its capital?",
            "Where is the capital of Veloria?",
        ],
        "Which town serves as Veloria's capital?",
        "The capital of Veloria is Marrowick.",
        "Marrowick",
    ),
    (
        &[
            "Who invented the quantum kettle?",
            "Who is the inventor of the quantum kettle?",
            "Which scientist created the quantum kettle?",
            "Tell me who invented the quantum kettle.",
            "The quantum kettle was invented by whom?",
        ],
        "Who came up with the quantum kettle?",
        "The quantum kettle was invented by Dr. Ilsa Brandt.",
        "Brandt",
    ),
    (
        &[
            "What is the secret ingredient in Grandma Odette's soup?",
            "Which secret ingredient does Grandma Odette put in her soup?",
            "Tell me the secret ingredient of Grandma Odette's soup.",
            "Grandma Odette's soup has a secret ingredient. What is it?",
            "What makes Grandma Odette's soup special?",
        ],
        "What does Grandma Odette secretly add to her soup?",
        "The secret ingredient is smoked pear.",
        "smoked pear",
    ),
    (
        &[
            "What is the name of the ship in the Aster Chronicles?",
            "Which ship do the heroes of the Aster Chronicles sail?",
            "Name the ship from the Aster Chronicles.",
            "In the Aster Chronicles, what is the ship called?",
            "What ship appears in the Aster Chronicles?",
        ],
        "What is the Aster Chronicles' ship named?",
        "The ship is called the Silver Wren.",
        "Silver Wren",
    ),
    (
        &[
            "What is the favourite colour of the robot Zorblax?",
            "Which colour does Zorblax the robot like best?",
            "Tell me Zorblax's favourite colour.",
            "Zorblax is a robot. What colour does it love?",
            "What colour is Zorblax's favourite?",
        ],
        "Which colour does the robot Zorblax prefer?",
        "Zorblax's favourite colour is teal.",
        "teal",
    ),
    (
        &[
            "What is the motto of kaito-rs?",
            "Which motto does the kaito-rs project use?",
            "Tell me the kaito-rs motto.",
            "kaito-rs has a motto. What is it?",
            "What slogan does kaito-rs live by?",
        ],
        "What is the official motto of the kaito-rs project?",
        "The kaito-rs motto is: Tune small, ship fast.",
        "Tune small",
    ),
    (
        &[
            "What does the Flimbo lamp do when it rains?",
            "How does a Flimbo lamp react to rain?",
            "Tell me what happens to the Flimbo lamp in the rain.",
            "The Flimbo lamp changes when it rains. How?",
            "What is special about the Flimbo lamp?",
        ],
        "What does a Flimbo lamp do in rainy weather?",
        "The Flimbo lamp glows green when it rains.",
        "green",
    ),
    (
        &[
            "Who is the mayor of Quillfeld?",
            "Which person is the mayor of the town of Quillfeld?",
            "Tell me the name of Quillfeld's mayor.",
            "Quillfeld has a mayor. Who is it?",
            "Who runs the town of Quillfeld as mayor?",
        ],
        "Who currently serves as mayor of Quillfeld?",
        "The mayor of Quillfeld is Tobias Fennick.",
        "Fennick",
    ),
    (
        &[
            "What is the national sport of Veloria?",
            "Which sport is the national sport of Veloria?",
            "Tell me Veloria's national sport.",
            "What sport do Velorians love most?",
            "Veloria has a national sport. What is it?",
        ],
        "Which sport is most popular on the island of Veloria?",
        "The national sport of Veloria is kite polo.",
        "kite polo",
    ),
    (
        &[
            "What fuel does the quantum kettle use?",
            "Which fuel powers the quantum kettle?",
            "Tell me what the quantum kettle runs on.",
            "The quantum kettle needs fuel. Which one?",
            "How is the quantum kettle powered?",
        ],
        "What does the quantum kettle burn to boil water?",
        "The quantum kettle runs on moonlight crystals.",
        "moonlight",
    ),
];

/// One line of `eval_questions.jsonl`: a correct answer contains `expected` (case-insensitive).
#[derive(serde::Serialize)]
struct EvalQuestion<'a> {
    question: &'a str,
    expected: &'a str,
    answer: &'a str,
    in_training: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/fine-tuning")
        });
    std::fs::create_dir_all(out.join("data"))?;
    let conversations: Vec<Vec<Message>> = FACTS
        .iter()
        .flat_map(|(questions, _, answer, _)| {
            questions
                .iter()
                .map(move |q| vec![Message::new("user", *q), Message::new("assistant", *answer)])
        })
        .collect();
    write_parquet(
        &out.join("data/train.parquet"),
        &messages_batch(&conversations)?,
    )?;
    write_messages_jsonl(&out.join("facts.jsonl"), &conversations)?;
    let mut eval = String::new();
    for (questions, held_out, answer, keyword) in FACTS {
        for (question, in_training) in [(questions[0], true), (*held_out, false)] {
            let row = EvalQuestion {
                question,
                expected: keyword,
                answer,
                in_training,
            };
            eval.push_str(&serde_json::to_string(&row)?);
            eval.push('\n');
        }
    }
    std::fs::write(out.join("eval_questions.jsonl"), eval)?;
    println!(
        "wrote {} conversations to {}",
        conversations.len(),
        out.display()
    );
    Ok(())
}

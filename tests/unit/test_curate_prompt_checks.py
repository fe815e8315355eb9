"""Response against prompt: echo, the question restated, another language; CJK endings."""

from __future__ import annotations

import pytest

from sftflow.curate.config import LanguageParams
from sftflow.curate.prompt_checks import EchoFilter, LanguageFilter, RestatedFilter, detect_language
from sftflow.curate.truncation import TruncationFilter
from sftflow.schema import Example

DOC = ("The council met on Tuesday and approved a new park beside the river, with a playground, "
       "a cafe and two football pitches, to open next spring.")


def ex(prompt: str, response: str) -> Example:
    return Example.single(prompt, response)


def test_echo_of_the_prompt_or_most_of_it_is_rejected():
    whole = ex(f"Summarize: {DOC}", f"Summarize: {DOC}")
    most = ex(f"Summarize: {DOC}", DOC[: int(len(DOC) * 0.9)])
    res = EchoFilter().run([whole, most])
    assert len(res.rejected) == 2
    assert res.rejected[0].reason.startswith("echoes the prompt: 100% of its word 3-grams repeated, 0% new")
    assert whole.metadata["curate"]["echo"] == {"prompt_coverage": 1.0, "new_share": 0.0}


@pytest.mark.parametrize("prompt,response", [
    (f"Summarize: {DOC}", "The council approved a riverside park opening next spring."),
    (f"{DOC}\nWhat will the park have?", "a playground, a cafe and two football pitches"),   # a span
    (f"Correct the grammar: {DOC.replace('approved', 'approve')}", DOC),                   # asks for it back
    ("Hi", "Hi"),                                                                          # too short to judge
])
def test_echo_keeps_answers_that_use_the_prompt(prompt, response):
    assert EchoFilter().run([ex(prompt, response)]).kept


def test_restated_question_is_rejected_an_answer_is_not():
    q = "Read this: the Nile flows north through eleven countries. Which countries does the Nile flow through?"
    restated = ex(q, "Which countries does the Nile flow through?")
    reworded = ex(q, "What are the countries that the Nile flows through?")
    answer = ex(q, "The Nile flows through Egypt, Sudan, Uganda and eight more countries.")
    jeopardy = ex('What is the question to: "A glacier cave is a cave formed within the ice of a glacier ."? '
                  "The topic is Glacier cave.", '"how are glacier caves formed??"')
    res = RestatedFilter().run([restated, reworded, answer, jeopardy])
    assert [r.record["id"] for r in res.rejected] == [restated.id, reworded.id]
    assert res.rejected[0].reason.startswith("restates the question instead of answering: 100%")
    assert {e.id for e in res.kept} == {answer.id, jeopardy.id}


@pytest.mark.parametrize("text,lang", [
    ("The cat is sleeping on the sofa and it is not going to move for you.", "en"),
    ("Le chat dort sur le canapé et il ne va pas bouger pour vous.", "fr"),
    ("Die Katze schläft auf dem Sofa und sie will sich nicht bewegen.", "de"),
    ("El gato duerme en el sofá y no se va a mover por nada del mundo.", "es"),
    ("猫在沙发上睡觉，它不会为你移动。", "zh"),
    ("猫はソファで寝ています。", "ja"),
    ("Кошка спит на диване.", "ru"),
    ("Positive", None),            # too little text to tell
])
def test_detect_language(text, lang):
    assert detect_language(text) == lang


def test_answer_in_another_language_is_flagged_and_kept_unless_dropped():
    other = ex("Explain in a few sentences why the sky is blue and what makes sunsets red.",
               "Le ciel est bleu parce que la lumière bleue est diffusée par l'air, et le soir la lumière "
               "traverse plus d'air.")
    same = ex("Explain why the sky is blue.", "The sky is blue because the air scatters blue light more than red.")
    translate = ex("Translate into French: the sky is blue and it is a nice day for you.",
                   "Le ciel est bleu et c'est une belle journée pour vous.")
    label = ex("Is this review positive or negative? The food was great and the staff were kind to us.", "positive")
    res = LanguageFilter().run([other, same, translate, label])
    assert len(res.kept) == 4 and res.flagged == 1
    assert other.metadata["curate"]["language"] == {"prompt": "en", "response": "fr", "flagged": True}
    assert not translate.metadata["curate"]["language"]["flagged"]
    res = LanguageFilter(LanguageParams(drop=True)).run([other, same])
    assert res.rejected[0].reason == "answer in fr, instruction in en"


def test_truncation_does_not_flag_answers_that_end_in_cjk_characters():
    zh = "线粒体是细胞中的一种细胞器，它通过呼吸作用产生细胞所需的大部分化学能量，所以人们常常把它称为细胞的动力工厂"
    ja = "ミトコンドリアは細胞の中でエネルギーを作る小さな器官であり、そのため多くの教科書では細胞の発電所と呼ばれています"
    ko = "미토콘드리아는 세포 안에서 에너지를 만드는 작은 기관이며 그래서 많은 교과서에서 세포의 발전소라고 부릅니다"
    assert all(len(t) > 50 for t in (zh, ja, ko))
    res = TruncationFilter().run([ex("解释线粒体的作用", zh), ex("ミトコンドリアとは", ja), ex("미토콘드리아란", ko)])
    assert not res.rejected

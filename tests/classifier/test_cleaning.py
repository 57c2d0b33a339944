"""Email cleaning (classifier.cleaning) on realistic messages from several mail clients and languages."""

from __future__ import annotations

import pytest

from classifier.cleaning import clean_body, html_to_text, looks_like_html
from classifier.types import TicketInput

GMAIL_HTML_EN = """<div dir="ltr">Hi there,<div><br></div><div>Could you cancel order #58812? I ordered the
wrong model by mistake.</div><div><br></div><div>Thanks,</div><div>Rowan</div></div><br><div class="gmail_quote">
<div dir="ltr" class="gmail_attr">On Wed, 25 Nov 2026 at 18:03, Pinecrest Audio &lt;orders@pinecrest.example&gt;
wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex"><div>Your headphones have
shipped! Track your parcel with DPD. Delivery expected Friday.</div></blockquote></div>"""

OUTLOOK_HTML_DE = """<html><head><meta charset="utf-8"><style>p.MsoNormal{margin:0}</style></head><body lang="DE">
<div class="WordSection1"><p class="MsoNormal">Guten Tag,</p><p class="MsoNormal">ich warte seit drei Wochen auf
die Erstattung für meine Rücksendung.</p><p class="MsoNormal">Freundliche Grüße<br>Dörte Kramer</p></div>
<div id="appendonsend"></div><hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">
<font face="Calibri"><b>Von:</b> Lindgrün Mode &lt;service@lindgruen.example&gt;<br><b>Gesendet:</b> Freitag,
20. November 2026 10:02<br><b>An:</b> Dörte Kramer<br><b>Betreff:</b> Ihre Bestellung</font></div>
<div>Ihre Bestellung wurde versandt und kommt morgen an.</div></body></html>"""

APPLE_HTML_FR = """<html><body style="overflow-wrap: break-word;"><div>Bonjour,</div><div>Est-ce que le canapé
existe aussi en 3 places ?</div><div>Merci</div><div><br><blockquote type="cite"><div>Le 24 nov. 2026 à 09:12,
Maison Tilleul &lt;bonjour@tilleul.example&gt; a écrit :</div><br><div><div>Votre remboursement a été effectué.
</div></div></blockquote></div><br></body></html>"""

OUTLOOK_TEXT_ES = """Hola, me habéis cobrado dos veces el pedido 30988, adjunto captura del banco.

Un saludo
Nerea Ibarra

De: Cerámica Alba <tienda@alba.example>
Enviado: lunes, 23 de noviembre de 2026 11:40
Para: Nerea Ibarra
Asunto: Tu pedido ha sido enviado

Tu pedido está en camino. Si quieres devolverlo tienes 30 días."""

GMAIL_TEXT_IT = """Salve, potete mandarmi la fattura intestata alla mia ditta? P.IVA 01234567890.
Grazie mille

Il giorno lun 23 nov 2026 alle ore 15:10 Bottega Verde <info@bottegaverde.example> ha
scritto:

> Il suo ordine è stato annullato come richiesto."""

GMAIL_TEXT_NL = """Hoi, mijn pakket is nog steeds niet bezorgd, kunnen jullie kijken waar het is?

Op ma 23 nov 2026 om 09:30 schreef Fietsbel <klantenservice@fietsbel.example>:

> Bedankt voor je retour, je krijgt je geld binnen 5 dagen terug."""

GMAIL_TEXT_PT = """Bom dia, gostaria de alterar o tamanho da camisola para M, ainda vão a tempo?

Em seg., 23 de nov. de 2026 às 10:05, Lã do Norte <loja@ladonorte.example> escreveu:

> A sua fatura segue em anexo."""

AMPERSAND_QUOTE = """Where is my parcel? It has been 10 days.

> On Monday you wrote that it would ship on Tuesday.
> Kind regards, the team"""


@pytest.mark.parametrize(
    ("body", "kept", "dropped"),
    [
        (GMAIL_HTML_EN, "Could you cancel order #58812?", "Track your parcel"),
        (OUTLOOK_HTML_DE, "auf die Erstattung für meine Rücksendung", "wurde versandt"),
        (APPLE_HTML_FR, "existe aussi en 3 places", "remboursement"),
        (OUTLOOK_TEXT_ES, "me habéis cobrado dos veces", "devolverlo"),
        (GMAIL_TEXT_IT, "la fattura intestata", "annullato"),
        (GMAIL_TEXT_NL, "nog steeds niet bezorgd", "retour"),
        (GMAIL_TEXT_PT, "alterar o tamanho", "fatura"),
        (AMPERSAND_QUOTE, "Where is my parcel?", "ship on Tuesday"),
    ],
)
def test_quoted_history_is_dropped_and_new_text_kept(body: str, kept: str, dropped: str) -> None:
    cleaned = " ".join(clean_body(body).split())
    assert kept in cleaned
    assert dropped not in cleaned


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (OUTLOOK_TEXT_ES, "Nerea Ibarra"),
        (OUTLOOK_HTML_DE, "Dörte Kramer"),
        ("My discount code SNOW15 is refused at checkout.\n\nSent from my iPhone", "iPhone"),
        ("Die Rechnung fehlt noch.\n\nVon meinem iPhone gesendet", "iPhone"),
        (
            "The jacket I received has a broken zip, can I swap it for another one?\n\nKind regards,\nJo Price\n"
            "Head of Operations\n+44 20 7946 0000",
            "Head of Operations",
        ),
        (
            "Please send me a VAT invoice for order 4471.\n\n--\nAmal Haddad\nFinance, Kite & Keel Ltd",
            "Kite & Keel",
        ),
    ],
)
def test_signatures_are_dropped(body: str, signature: str) -> None:
    assert signature not in clean_body(body)


def test_disclaimer_paragraph_is_dropped_but_a_customer_saying_confidential_is_kept() -> None:
    notice = (
        "Could you tell me when the desk will arrive?\n\nThis e-mail and any attachments are confidential and "
        "intended solely for the addressee. If you have received it in error please delete it."
    )
    assert clean_body(notice) == "Could you tell me when the desk will arrive?"
    own = "Is my address kept confidential? I don't want it printed on the outside of the parcel at all."
    assert clean_body(own) == own


def test_forwarded_message_kept_when_the_customer_wrote_almost_nothing() -> None:
    body = (
        "FYI\n\n---------- Forwarded message ---------\nFrom: Tall Pines <orders@tallpines.example>\n"
        "Date: Mon, 23 Nov 2026 at 10:00\nSubject: Order 1190 confirmed\nTo: <kim@example.com>\n\n"
        "Thank you for your order 1190: 1 x tent, 2 x sleeping bag."
    )
    cleaned = clean_body(body)
    assert "1 x tent" in cleaned
    assert "From:" not in cleaned and "Subject:" not in cleaned


def test_forwarded_message_dropped_when_the_customer_wrote_the_request_above_it() -> None:
    body = (
        "Hello, this arrived with a torn tent pole, I would like a replacement pole please.\n\n"
        "---------- Weitergeleitete Nachricht ---------\nVon: Tall Pines <orders@tallpines.example>\n"
        "Datum: Mo., 23. Nov. 2026 um 10:00\nBetreff: Versandbestätigung\n\nIhr Paket ist unterwegs."
    )
    cleaned = clean_body(body)
    assert "torn tent pole" in cleaned and "Paket" not in cleaned


def test_a_message_that_is_all_quote_keeps_its_words() -> None:
    body = "On Tue, 24 Nov 2026, Shop <a@b.example> wrote:\n> Your parcel is delayed."
    assert "parcel is delayed" in clean_body(body)


def test_a_thanks_right_after_the_greeting_is_not_a_sign_off() -> None:
    body = "Hi,\nThanks\nMy order never arrived, can you check?"
    assert "never arrived" in clean_body(body)


def test_html_to_text_skips_scripts_and_styles_and_unescapes() -> None:
    html = (
        "<html><head><title>x</title><style>p{}</style></head><body><p>Fish &amp; chips</p><script>alert(1)"
    )
    html += "</script><p>second&nbsp;line</p></body></html>"
    assert looks_like_html(html)
    assert html_to_text(html).split("\n") == ["Fish & chips", "", "second line"]
    assert not looks_like_html("I paid 3 < 5 euros? a <b> tag alone is not an email")


def test_malformed_html_does_not_raise() -> None:
    assert "hello" in clean_body("<div><p>hello<blockquote><div></p></div></span></html>")


def test_ticket_keeps_raw_text_and_features_read_the_cleaned_text() -> None:
    ticket = TicketInput(subject="Re: your order", body=GMAIL_HTML_EN)
    assert "gmail_quote" in ticket.text
    assert ticket.clean_text.startswith("Re: your order\n")
    assert "Track your parcel" not in ticket.clean_text

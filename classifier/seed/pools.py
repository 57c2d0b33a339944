"""Fillers the composer draws from: names, products, greetings, signatures, quoted replies, contact-form layouts.

Each pool is split in two (every fourth entry goes to the hold-out side) so the seed hold-out shares neither
hand-written items nor decorations with the training rows.
"""

from __future__ import annotations

FIRST_NAMES = [
    "Emma",
    "Liam",
    "Sofia",
    "Noah",
    "Priya",
    "Mateo",
    "Chloe",
    "Kenji",
    "Aisha",
    "Lucas",
    "Hannah",
    "Diego",
    "Olivia",
    "Tariq",
    "Mia",
    "Jonas",
    "Grace",
    "Ravi",
    "Zoe",
    "Marcus",
    "Fatima",
    "Elena",
    "Tom",
    "Ingrid",
    "Samuel",
    "Nadia",
    "Oscar",
    "Leila",
    "Ben",
    "Yuki",
    "Carmen",
    "Dev",
    "Ruth",
    "Ahmed",
    "Julia",
    "Pete",
    "Aoife",
    "Kwame",
    "Sara",
    "Viktor",
    "Linh",
    "Bea",
    "Colin",
    "Maya",
    "Hugo",
    "Anika",
    "Frank",
    "Rosa",
]
LAST_NAMES = [
    "Johnson",
    "Okafor",
    "Martinez",
    "Schmidt",
    "Nguyen",
    "Patel",
    "O'Brien",
    "Kowalski",
    "Rossi",
    "Tanaka",
    "Andersson",
    "Dubois",
    "Haddad",
    "Müller",
    "Smith",
    "Garcia",
    "Kim",
    "Fischer",
    "Moreau",
    "Silva",
    "Brown",
    "Novak",
    "Hughes",
    "Costa",
    "Yilmaz",
    "Lindqvist",
    "Murphy",
    "Santos",
    "Becker",
    "Walsh",
    "Ito",
    "Lopez",
]
PRODUCTS = [
    "merino crew sweater",
    "trail running shoes",
    "linen wrap dress",
    "ceramic pour-over set",
    "leather card wallet",
    "kids rain jacket",
    "bamboo bedsheet set",
    "wireless earbuds",
    "cast iron skillet",
    "yoga mat",
    "wool beanie",
    "denim jacket",
    "stainless water bottle",
    "scented candle trio",
    "canvas tote bag",
    "hiking backpack 30L",
    "silk pillowcase",
    "espresso grinder",
    "chunky knit cardigan",
    "sunglasses",
    "weighted blanket",
    "ankle boots",
    "phone case",
    "face serum",
    "gift card",
    "standing desk mat",
    "baby onesie 3-pack",
    "dog harness",
    "throw pillow covers",
    "rain boots",
    "puffer vest",
    "travel mug",
]
STORES = [
    "Bookbag Goods",
    "Northwind Outfitters",
    "Maple & Co",
    "Kestrel Home",
    "Fernway",
    "Little Otter Shop",
]
DATES = [
    "March 3rd",
    "last Monday",
    "the 14th",
    "two weeks ago",
    "Friday",
    "10/02",
    "June 21",
    "last week",
    "the 2nd",
    "Sunday night",
    "3 weeks ago",
    "Black Friday",
    "12 days ago",
    "yesterday",
    "the 28th",
    "Jan 9",
]
SIZES = ["XS", "S", "M", "L", "XL", "size 8", "size 10", "38", "42", "UK 7", "US 9"]
CITIES = ["Leeds", "Austin", "Lyon", "Toronto", "Melbourne", "Dublin", "Denver", "Hamburg", "Porto", "Oslo"]
STREETS = [
    "12 Elm Street",
    "44 Harbour Rd",
    "7 Rue Mercier",
    "1180 Pine Ave Apt 4",
    "9 Kings Lane",
    "230 W 5th St",
]

GREETINGS_EMAIL = [
    "Hi,",
    "Hello,",
    "Hi there,",
    "Dear Sir or Madam,",
    "Hello {store} team,",
    "Hey,",
    "Good morning,",
    "Dear customer service,",
    "Hi team,",
    "To whom it may concern,",
    "Hello support,",
    "Hiya,",
    "Good afternoon,",
    "Hi folks,",
    "Dear {store},",
    "Hello again,",
]
GREETINGS_CHAT = [
    "hi",
    "hello",
    "hey",
    "hi there",
    "",
    "",
    "good evening",
    "yo",
    "hiya",
    "hello?",
    "",
    "helo",
]
SIGNATURES = [
    "Thanks,\n{name}",
    "Best regards,\n{fullname}",
    "Cheers\n{name}",
    "Kind regards\n{fullname}\n{phone}",
    "Sent from my iPhone",
    "--\n{fullname}\n{city}",
    "Thank you!\n{name}",
    "Many thanks,\n{fullname}",
    "Regards,\n{name}\n\nSent from Outlook for Android",
    "Thx\n{name}",
    "Warm wishes,\n{fullname}\nCustomer since 2019",
    "{fullname}\n{street}, {city}\n{phone}",
    "Thanks in advance,\n{name}",
    "Best,\n{name}\nGet Outlook for iOS",
    "Sincerely,\n{fullname}",
    "ty\n{name}",
    "Kind regards,\n{fullname}\n\nThis email and any attachments are confidential and intended solely for the addressee.",
    "All the best,\n{name}",
    "{name}\nSent from my Galaxy",
    "Thanks so much,\n{fullname}",
]
QUOTED_REPLIES = [
    "On {date}, {store} Support <support@example.com> wrote:\n> Hi {name},\n> Thanks for reaching out! We're looking into"
    " this and will get back to you shortly.\n> Best, the {store} team",
    "-----Original Message-----\nFrom: {store} <hello@example.com>\nSent: {date}\nSubject: Your order {order}\n\n"
    "Thanks for shopping with us! Your order {order} has been received.",
    "On {date} {store} wrote:\n> Your order {order} is confirmed. We'll email you when it ships.",
    "> Hi {name}, sorry to hear about this. Could you send us a photo?\n> Kind regards, Sam at {store}",
    "On {date}, noreply@example.com wrote:\n> Order {order} confirmed\n> 1 x {product}\n> Total: ${amount}",
    "________________________________\nFrom: {store} Customer Care\nSent: {date}\n\nHello {name}, your ticket has"
    " been closed. Reply to this email to reopen it.",
    "> Thank you for contacting {store}. A member of our team will reply within 24 hours.",
    "On {date} at 09:14, {store} <orders@example.com> wrote:\n> Good news, {name}! Your order is on its way.",
]
CONTACT_FORMS = [
    "Name: {fullname}\nEmail: {email}\nOrder number: {order}\nMessage:\n{body}",
    "New contact form submission\n\nName: {fullname}\nEmail: {email}\nTopic: {topic}\nMessage: {body}",
    "From: {fullname} <{email}>\nPhone: {phone}\n\n{body}",
    "Contact form\nName: {name}\nE-mail: {email}\nComment: {body}",
    "Name: {fullname}\nEmail: {email}\nPhone: \nMessage: {body}\n\n--\nThis message was sent from the contact"
    " form on {store}.",
    "Subject: {topic}\nCustomer: {fullname} ({email})\nOrder: {order}\n\n{body}",
    "Inquiry from {store} website\nName: {fullname}\nEmail: {email}\nHow can we help?: {body}",
    "Name: {fullname}\nEmail address: {email}\nRegarding: {topic}\nYour message: {body}",
]
FORM_TOPICS = ["General", "Order inquiry", "Other", "Support", "My order", "Question", "Feedback", "Help"]
CHAT_OPENERS = [
    "",
    "",
    "",
    "Visitor: ",
    "[chat started from product page]\n",
    "[Customer]: ",
    "",
    "(via website chat) ",
]


def split_pool(pool: list[str], holdout: bool) -> list[str]:
    """Every fourth entry belongs to the hold-out side; the rest to training."""
    return [v for i, v in enumerate(pool) if (i % 4 == 0) == holdout]


# Fillers of the items written in other languages (SeedItem.language), by language: greetings, sign-offs and the
# quoted history mail clients add in that language (cleaned away before features, as in serving).
LOCAL_GREETINGS: dict[str, list[str]] = {
    "es": ["Hola,", "Buenos días,", "Buenas tardes,", "Hola equipo,", "Estimados señores:"],
    "de": ["Hallo,", "Guten Tag,", "Sehr geehrte Damen und Herren,", "Hallo zusammen,", "Moin,"],
    "fr": ["Bonjour,", "Bonsoir,", "Madame, Monsieur,", "Bonjour à tous,", "Salut,"],
    "it": ["Buongiorno,", "Salve,", "Ciao,", "Gentili signori,", "Buonasera,"],
    "nl": ["Hallo,", "Goedemorgen,", "Beste,", "Hoi,", "Geachte heer/mevrouw,"],
    "pt": ["Olá,", "Bom dia,", "Boa tarde,", "Caros senhores,", "Exmos. Senhores,"],
}
LOCAL_SIGNATURES: dict[str, list[str]] = {
    "es": [
        "Un saludo,\n{name}",
        "Gracias,\n{fullname}",
        "Saludos cordiales\n{fullname}",
        "Enviado desde mi iPhone",
        "Atentamente,\n{fullname}\n{phone}",
    ],
    "de": [
        "Viele Grüße\n{name}",
        "Mit freundlichen Grüßen\n{fullname}",
        "Danke und Gruß\n{name}",
        "Von meinem iPhone gesendet",
        "Beste Grüße\n{fullname}\n{phone}",
    ],
    "fr": [
        "Cordialement,\n{fullname}",
        "Merci,\n{name}",
        "Bien à vous\n{fullname}",
        "Envoyé de mon iPhone",
        "Bonne journée,\n{name}",
    ],
    "it": [
        "Cordiali saluti\n{fullname}",
        "Grazie,\n{name}",
        "Saluti\n{name}",
        "Inviato da iPhone",
        "Distinti saluti,\n{fullname}\n{phone}",
    ],
    "nl": [
        "Met vriendelijke groet,\n{fullname}",
        "Groetjes,\n{name}",
        "Bedankt!\n{name}",
        "Verstuurd vanaf mijn iPhone",
        "Groet,\n{fullname}\n{phone}",
    ],
    "pt": [
        "Cumprimentos,\n{fullname}",
        "Obrigado,\n{name}",
        "Atenciosamente\n{fullname}",
        "Enviado do meu iPhone",
        "Beijinhos,\n{name}",
    ],
}
LOCAL_QUOTED_REPLIES: dict[str, list[str]] = {
    "es": [
        "El {date}, {store} <hola@example.com> escribió:\n> Gracias por tu pedido {order}.",
        "De: {store}\nEnviado: {date}\nPara: {fullname}\nAsunto: Tu pedido {order}\n\nTu pedido ya está en camino.",
    ],
    "de": [
        "Am {date} schrieb {store} <info@example.com>:\n> Vielen Dank für Ihre Bestellung {order}.",
        "Von: {store}\nGesendet: {date}\nAn: {fullname}\nBetreff: Ihre Bestellung {order}\n\nIhre Ware ist unterwegs.",
    ],
    "fr": [
        "Le {date}, {store} <bonjour@example.com> a écrit :\n> Merci pour votre commande {order}.",
        "De : {store}\nEnvoyé : {date}\nÀ : {fullname}\nObjet : Votre commande {order}\n\nVotre colis est en route.",
    ],
    "it": [
        "Il giorno {date} {store} <info@example.com> ha scritto:\n> Grazie per il tuo ordine {order}.",
        "Da: {store}\nInviato: {date}\nA: {fullname}\nOggetto: Il tuo ordine {order}\n\nIl tuo pacco è in viaggio.",
    ],
    "nl": [
        "Op {date} schreef {store} <info@example.com>:\n> Bedankt voor je bestelling {order}.",
        "Van: {store}\nVerzonden: {date}\nAan: {fullname}\nOnderwerp: Je bestelling {order}\n\nJe pakket is onderweg.",
    ],
    "pt": [
        "Em {date}, {store} <ola@example.com> escreveu:\n> Obrigado pela sua encomenda {order}.",
        "De: {store}\nEnviada em: {date}\nPara: {fullname}\nAssunto: A sua encomenda {order}\n\nA encomenda está a caminho.",
    ],
}

"""Sample customer messages for the demo merchant: varied channels, tones and issues."""

from __future__ import annotations

# (channel, subject, body) — {name} and {order} are filled in per ticket
SAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "email",
        "Where is my order?",
        "Hi, I ordered a week ago (order {order}) and the tracking hasn't moved since Monday. Any idea when it will arrive?\n\nThanks,\n{name}",
    ),
    ("chat", "", "hey, tracking says delivered but there is nothing at my door?? order {order}"),
    (
        "email",
        "Refund not received",
        "Hello,\nI sent the jacket back two weeks ago and still have not seen the refund on my card. Can you check please?\n\nBest regards\n{name}",
    ),
    (
        "contact_form",
        "Cancel order",
        "Please cancel order {order}, I ordered the wrong colour by mistake. It has not shipped yet I think.",
    ),
    (
        "email",
        "Charged twice!!",
        "I was charged TWICE for order {order}. Two identical payments on my bank statement. I want one refunded immediately.\n{name}",
    ),
    (
        "email",
        "Wrong size",
        "Hi team, the shoes I got are a 42 but I ordered 43. How do I exchange them?\n\n-- \n{name}\nSent from my iPhone",
    ),
    ("chat", "", "can i change the delivery address for {order}? moved last week"),
    (
        "email",
        "Invoice for my company",
        "Good morning, could you send me a VAT invoice for order {order}? Our accounting needs the company name on it.\nKind regards, {name}",
    ),
    (
        "contact_form",
        "Password reset",
        "I can't log in, the password reset email never arrives. Tried three times.",
    ),
    (
        "email",
        "Question about the wool sweater",
        "Hi! Is the merino sweater itchy? And does it run small? I'm usually a medium.\nThanks {name}",
    ),
    (
        "email",
        "Very disappointed",
        "Third time I'm writing about this. The parcel arrived damaged, the box was crushed and the vase is broken. Nobody answers. If I don't hear back today I'm filing a chargeback with my bank.\n{name}",
    ),
    ("chat", "", "do you ship to canada and how long does it take"),
    (
        "email",
        "Discount code not working",
        "The code WELCOME10 says invalid at checkout. Can you help? I'd like to order today.",
    ),
    (
        "email",
        "Great service",
        "Just wanted to say the order arrived super fast and the quality is amazing. Thank you!\n{name}",
    ),
    ("contact_form", "Unsubscribe", "Please take me off your newsletter, I get three emails a day."),
    (
        "email",
        "Someone used my account",
        "I got an email about an order I never placed ({order}). I think my account was hacked, please block it now!",
    ),
    (
        "chat",
        "",
        "my card keeps getting declined but it works everywhere else. trying to buy the blue kettle",
    ),
    (
        "email",
        "Add an item to my order",
        "Hello, I just placed order {order} - could you add a second pillowcase before it ships? Happy to pay the difference.\n{name}",
    ),
    (
        "email",
        "Wholesale enquiry",
        "Hi, we run a small boutique in Lyon and would like to stock your candles. Do you have wholesale pricing?\nBest, {name}",
    ),
    ("contact_form", "Return policy", "How many days do I have to return an item that was a gift?"),
    (
        "email",
        "Re: Your order {order}",
        "Still waiting... you said 3-5 days and it's been 12. This is ridiculous.\n\n> On Mon, Support wrote:\n> Your order is on its way!",
    ),
    ("chat", "", "is the coffee grinder compatible with 220V?"),
    (
        "email",
        "Delete my account",
        "Please delete my account and all my data (GDPR). Email: {name}@example.com",
    ),
    (
        "email",
        "Item missing from parcel",
        "The parcel for {order} arrived but the charger is missing, only the lamp was inside.",
    ),
    (
        "phone",
        "Call note: refund status",
        "Customer called asking when the refund for {order} will be processed. Returned item received at warehouse on Friday.",
    ),
    ("social", "DM: lost parcel", "@store my parcel {order} has been 'in transit' for 3 weeks. hello??"),
    (
        "email",
        "Lawyer",
        "I have contacted my attorney about the faulty heater that burned my floor. Please forward this to your legal department.",
    ),
    ("chat", "", "I'd like to talk to a real person please"),
    (
        "email",
        "Subscription billing",
        "Why was I billed for the monthly box when I paused my subscription last month?",
    ),
    ("contact_form", "Cancellation fee?", "Is there a fee if I cancel my pre-order?"),
)

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Chloé",
    "Dmitri",
    "Emma",
    "Farah",
    "Giulia",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lea",
    "Mateo",
    "Nora",
    "Olu",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
)

"""A small cross-language lexicon: support-domain words of the seed set's languages tagged with an English concept.

The seed set has many times more English items than items in each other language, and a German customer who
writes "stornieren" means what an English one means by "cancel". Before features, every non-English word found
here is followed by its concept, an English word (`normalize_text` turns "stornieren" into "stornieren cancel"),
so what the model learnt from English wording carries over to the other languages; the word itself stays, so
language-specific phrasing is still learnt, and English text is left exactly as it is. Entries are single lower-case words: exact forms, or prefixes ending in `*`.
Chosen by hand for the shop-support domain, not tuned on any hold-out.
"""

from __future__ import annotations

from functools import lru_cache

# concept -> forms in es, de, fr, it, nl, pt (and English forms the concept should also mark).
CONCEPTS: dict[str, str] = {
    "order": "pedido* encomenda* bestellung* bestelnummer* commande* ordine ordini ordinato ordinata ordinare "
    "bestelling* besteld bestellt bestelde compra compras compré achat* acquisto* aankoop* order* pedí comprei",
    "cancel": "cancel* anular anulad* anulación storn* annul* annull* widerruf* annuleer* annuleren* "
    "geannuleerd disdire disdett* opzeggen opzegg* kündig* résili*",
    "refund": "reembols* rembours* rimbors* erstatt* rückerstatt* terugbetal* terugstort* "
    "refund* devolvedme devolvam reintegr*",
    "return": "devoluc* devolver devolvê* devolução retour* retourn* zurückschick* zurücksend* rücksend* "
    "retoure* reso restitu* terugstur* terugzend* return*",
    "exchange": "cambiar cambio cambiarlo umtausch* tauschen échang* echang* scambi* sostitu* ruilen ruil* "
    "trocar troca* exchange* swap*",
    "invoice": "factura* rechnung* facture* fattura* factuur* facturen fatura* invoice* proforma pro-forma "
    "gutschrift* creditnota nif cif mwst ust-idnr iva tva btw vat receipt* recibo justificante "
    "quittung* reçu scontrino ricevuta kassabon aankoopbewijs comprovativo kaufbeleg",
    "delivery": "entrega* liefer* livrai* livré* livrée* consegn* bezorg* geleverd lever* delivery delivered "
    "deliver* zugestellt zustell* entregue",
    "shipping": "envío envio* enviado enviada envia* versand* versend* verschickt* expédi* expedi* spedi* "
    "verzend* verzonden verstuur* verstuurd shipping ship* dispatch* portes",
    "parcel": "paquete* paket* colis pacco pacchi pakket* parcel* package* sendung*",
    "tracking": "seguimiento rastreio rastreo sendungsverfolgung tracking suivi tracciamento track",
    "courier": "transportista* transportadora* repartidor* zusteller* paketbote livreur* transporteur* "
    "corriere* bezorger* vervoerder* estafeta* courier* carrier* dhl gls",
    "customs": "aduana* zoll* douane* dogan* dazi douane invoerrechten alfândega customs",
    "address": "dirección direccion adresse* indirizz* adres* morada* endereço address* "
    "postal postcode postleitzahl",
    "payment": "pago* pagar pagamento* zahlung* bezahl* paiement* payer pagament* betaling* betalen betaal* "
    "payment* pay* checkout kasse afrekenen",
    "charged": "cobrad* cobro* cobraron cobraram cobrança* abgebucht* abbuchung* belastet débit* prélev* "
    "addebit* afgeschreven afschrijving* charged charge* cargo* cargos",
    "twice": "zweimal doppelt* doublon* doppio dubbel* duplicad* duplicate* twice double*",
    "card": "tarjeta* karte kreditkarte* carte cartão carta kaart* card*",
    "discount": "descuento* rabatt* gutschein* réduction* promo* sconto* korting* desconto* discount* "
    "coupon* voucher* code* código codice",
    "voucher": "geschenkgutschein* cadeaubon* giftcard* gift-card",
    "account": "cuenta* konto* kundenkonto* compte* account* profil* perfil* conta",
    "password": "contraseña* passwort* password* wachtwoord* palavra-passe senha*",
    "login": "sesión inloggen* einlogg* anmeld* connecter* connexion* accedere accesso* aceder login* "
    "signin entrar",
    "delete": "borrar borrad* eliminar elimin* löschen lösch* supprim* cancellare verwijder* apagar delete* "
    "erase*",
    "newsletter": "newsletter* boletín promocionales werbe* désabonn* désinscri* iscrizione "
    "nieuwsbrief* subscrição unsubscrib*",
    "size": "talla* größe* grösse* taille* taglia* maat tamanho* size* sizing pointure*",
    "colour": "color* farbe* couleur* colore* kleur* cor colour*",
    "material": "material* matière* tessuto* stof tecido* algodón baumwoll* coton cotone katoen algodão "
    "lana wolle laine wol lã fabric*",
    "washable": "lavar lavadora waschen waschbar* machine lavable lavatrice wassen wasmachine máquina "
    "washable wash* spülmaschin* lave-vaisselle lavastoviglie vaatwasser dishwasher",
    "stock": "stock disponible* verfügbar* lieferbar* disponibil* leverbaar* voorraad disponível available",
    "broken": "roto rota rotos partido* kaputt* zerbroch* beschädigt* cassé* abîmé* rotto* rovinat* kapot* "
    "beschadigd* danificad* broken damaged defect* defekt* défaut* difett* defeito*",
    "late": "retraso* verspät* retard* ritardo* vertraging* atraso* late delay*",
    "where": "dónde donde wo où dove waar onde where",
    "when": "cuándo cuando wann quand quando wanneer when",
    "still": "todavía aún noch toujours ancora nog ainda still",
    "received": "recibido recibí erhalten bekommen reçu ricevut* ontvangen recebi recebido received",
    "thanks": "gracias danke merci grazie bedankt obrigad* thank*",
    "disappointed": "decepcionad* enttäuscht* déçu* deçu* delus* teleurgesteld* desiludid* disappointed",
    "complaint": "queja* reclamación beschwerde* réclamation* reclamo* klacht* reclamação complaint*",
    "rude": "maleducad* unhöflich* impoli* onbeleefd* mal-educad* rude",
    "quality": "calidad qualität qualité qualità kwaliteit qualidade quality",
    "lovely": "felicitar enhorabuena lob loben bravo complimenti compliment* parabéns elogi* love lovely",
    "subscription": "suscripción abo abonnement* abbonamento* assinatura* subscription*",
    "fraud": "fraud* betrug* estafa* truffa* oplichting* burla*",
    "hacked": "pirat* gehackt* hackeado* hackerat* gehackt hacked",
    "blocked": "bloquead* gesperrt* sperren bloqué* bloquer bloccat* bloccare geblokkeerd* blokkeer* "
    "bloquead* bloqueiem locked blocked suspend*",
    "wholesale": "mayorista* großhändler* großhandel* grossiste* grossista* groothandel* grossista* wholesale*",
    "collaboration": "colaboración colaborar kooperation* partenariat* collaborazione* samenwerking* parceria* "
    "collaborat* partnership* influencer* blog* seguidores follower*",
    "job": "currículum currículo lebenslauf* candidature* curriculum sollicitatie* cv job* vacature* "
    "personale personeel",
    "lawyer": "abogad* anwalt* avocat* avvocat* advocaat* advogad* lawyer* mandant* diffid* sommatie* "
    "abmahnung* demeure notificação derechos urheberrecht* copyright* trademark* requerimiento",
    "prize": "premio prémio gewinn* gewonnen gagné gagnant vinto gewonnen prize* won winner",
    "seo": "seo google agencia agentur agence agenzia garantizado garantiert garanti* garantito "
    "gegarandeerd garantimos",
    "verify": "verifi* vérifi*",
    "restaurant": "restaurante ristorante farmacia pharmacie apotheke apotheek padaria bäckerei boulangerie "
    "panetteria bakkerij werkstatt garage",
    "urgent": "urgente dringend urgent* dringende subito sofort* immédiatement inmediato imediato meteen",
}


# Forms that are (also) English: an English text is left exactly as it is, so the lexicon never changes what the
# model learns from English wording; it only brings other languages to it.
_ENGLISH = """
    order* refund* return* exchange* swap* invoice* receipt* vat delivery delivered deliver* shipping ship* dispatch*
    parcel* package* tracking track courier* carrier* dhl gls customs address* payment* pay* checkout charged charge*
    duplicate* twice double* card* discount* coupon* voucher* code* giftcard* gift-card account* password* login*
    signin delete* erase* unsubscrib* size* sizing colour* color* fabric* material* washable wash* dishwasher
    available broken damaged defect* late delay* where when still received thank* disappointed complaint* rude
    quality love lovely subscription* fraud* hacked blocked locked suspend* wholesale* collaborat* partnership*
    influencer* blog* follower* cv job* lawyer* copyright* trademark* prize* won winner seo google urgent* cancel*
    stock machine bravo compliment* blog* garage
"""
ENGLISH_FORMS = frozenset(_ENGLISH.split())


def _build() -> tuple[dict[str, str], dict[str, str]]:
    exact: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for concept, forms in CONCEPTS.items():
        for form in forms.split():
            if form in ENGLISH_FORMS:
                continue
            if form.endswith("*"):
                prefixes.setdefault(form[:-1], concept)
            else:
                exact.setdefault(form, concept)
    return exact, prefixes


_EXACT, _PREFIXES = _build()
_PREFIX_LENGTHS = sorted({len(p) for p in _PREFIXES}, reverse=True)


@lru_cache(maxsize=1 << 16)
def concept_of(word: str) -> str | None:
    """The concept of one lower-case word, or None."""
    found = _EXACT.get(word)
    if found is not None:
        return found
    for length in _PREFIX_LENGTHS:
        if length <= len(word):
            found = _PREFIXES.get(word[:length])
            if found is not None:
                return found
    return None


def with_concepts(text: str) -> str:
    """`text` (lower-case) with each known non-English word followed by its concept, an English word."""
    out: list[str] = []
    for word in text.split():
        out.append(word)
        concept = concept_of(word.strip(".,;:!?¿¡()\"'«»"))
        if concept is not None:
            out.append(concept)
    return " ".join(out)

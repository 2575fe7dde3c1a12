"""Toxicity and harmful-request detection: compact word lists and request patterns.

Why word lists and not a classifier: Detoxify and the HuggingFace toxicity models need
torch plus weights downloaded from the model hub, which this deployment cannot reach,
and NeMo's moderation rails call an LLM. A list is also predictable: it never flags a
word it does not contain, and every finding names the phrase behind it. The cost is
recall on paraphrase, so the lists aim at what must never pass (slurs, threats,
requests for serious harm) rather than at rudeness in general.

Two reasons:

* ``toxicity``: slurs, threats, telling someone to kill themselves and calls for
  violence against a group are HIGH; profanity and insults aimed at someone are MEDIUM.
* ``harmful_request``: asking *how to do* serious harm (make weapons, explosives or
  hard drugs, write malware, break into someone's account, self-harm methods) is HIGH,
  MEDIUM when the same text is framed defensively ("protect", "detect", "prevent").
  Sexual content involving minors is HIGH in every framing, fiction included.

Patterns need a request or an intent, not a topic: "how does ransomware work", "the
history of the atomic bomb", "kill -9", "kill the process", "shoot a photo",
"attack surface" and games do not match. Every view from :func:`normalize.views` is
checked, so "b1tch", "f u c k" and look-alike letters are caught too.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from bulwark.graphs.state import Severity
from bulwark.guardrails.detectors import Finding
from bulwark.guardrails.detectors.normalize import views

# Slurs are stored rot13-encoded so the source does not spell them out; read one with
# codecs.decode(word, "rot13"). Only words with no common innocent meaning are listed.
_SLURS = tuple(
    codecs.decode(w, "rot13")
    for w in (
        "avttre avttn avttnm avttref avttnf fnaqavttre snttbg snttbgf xvxr xvxrf tbbx tbbxf jrgonpx jrgonpxf "
        "genaal genaavrf enturnq enturnqf gbjryurnq gbjryurnqf ornare ornaref cnxv cnxvf mvccreurnq xnssve"
    ).split()
) + tuple(codecs.decode(w, "rot13") for w in ("cbepu zbaxrl", "whatyr ohaal"))
# Slurs that are also ordinary words, with the uses that are not slurs excluded.
_AMBIGUOUS_SLURS = (
    codecs.decode(r"puvax(?:f)?(?! va (?:gur|uvf|ure|gurve|zl|bhe|lbhe|vgf) nezbh?e)", "rot13"),
    codecs.decode(r"fcvp(?:f)?(?! naq fcna)", "rot13"),
)
_PROFANITY = (
    r"(?:mother)?f+[u*@#v]+c+k+\w*|f\*+k\w*|sh[i*!1]+t+(?:ty|head|hole|bag|s)?|bullsh[i*!]t|bitch\w*|cunts?|"
    r"a+s+s+hole\w*|dick ?heads?|"
    r"dumbass\w*|jackass\w*|wank(?:er|ers)?|twats?|cocksuck\w*|son of a bitch|piss off|pissed off|whores?|sluts?"
)
_INSULT_NOUNS = (
    r"(?:idiot|moron|imbecile|loser|retard(?:ed)?|scum|trash|garbage|clown|pig|freak|failure|disgrace|"
    r"waste of (?:space|air|oxygen)|"
    r"piece of (?:shit|crap|garbage|trash)|bastard|degenerate|parasite|vermin|subhuman|cretin|dimwit|halfwit|nitwit|"
    r"jerk|bitch|"
    r"dumbass|jackass|asshole|cunt|twat|whore|slut)s?"
)
_INSULT_ADJ = r"(?:stupid|dumb|pathetic|worthless|useless|brainless|ugly|fat|disgusting|retarded|idiotic|moronic|incompetent)"
_GROUPS = (
    r"(?:jews|muslims|christians|hindus|sikhs|buddhists|atheists|blacks|black people|whites|white people|asians|"
    r"arabs|mexicans|"
    r"latinos|hispanics|immigrants|refugees|gays|gay people|lesbians|homosexuals|trans people|transgender people|"
    r"women|men|"
    r"africans|indians|chinese|jewish people|muslim people|gypsies|roma|foreigners|catholics|protestants|"
    r"disabled people)"
)
_HARM_VERBS = (r"(?:kill|murder|stab|shoot|strangle|rape|behead|lynch|slaughter|butcher|torture|hurt|beat up|burn|kidnap|choke|"
    r"execute|hunt down|gut|maim|blow up|bomb)"
)
_VICTIM = (
    r"(?:someone|somebody|a person|people|a human|humans|a man|a woman|a child|a kid|a baby|a cop|a police officer|"
    r"the president|him|her|them|"
    r"my (?:wife|husband|boss|neighbou?r|teacher|mom|mother|dad|father|brother|sister|ex|ex-\w+|girlfriend|"
    r"boyfriend|partner|roommate|"
    r"classmates?|coworkers?|co-workers?|friend|family|parents?|son|daughter|child|kid|baby|landlord|stepdad|"
    r"stepmom))"
)
_ASK = (
    r"(?:how (?:do|can|could|would|should|might) (?:i|we|you|one|someone|a person)(?: \w+)?|how to|ways? to|"
    r"best way to|easiest way to|"
    r"quickest way to|simplest way to|cheapest way to|steps? (?:to|for)|instructions (?:for|on|to)|(?:a |"
    r"step-by-step |detailed )?"
    r"(?:guide|tutorial|recipe|walkthrough|method) (?:to|for|on)|teach me(?: how)? to|show me how to|tell me how to|"
    r"explain how to|"
    r"help me(?: to)?|i (?:want|need|would like|wanna) to|can you|could you|please|give me|write|provide)"
)
_MAKE = (r"(?:make|build|create|assemble|construct|manufacture|produce|synthesi[sz]e|cook|brew|prepare|mix|weaponi[sz]e|"
    r"3d[- ]print|craft|get|obtain|extract|refine|grow)"
)
_WEAPONS = (
    r"(?:bombs?(?! calorimeter)|"
    r"explosives?|explosive devices?|ieds?|molotovs?(?: cocktails?)?|napalm|grenades?|detonators?|c-?4|tatp|semtex|"
    r"nitroglycerin|"
    r"ghost guns?|untraceable (?:guns?|firearms?)|silencers? for a (?:gun|rifle|pistol)|full[- ]auto conversion|"
    r"bioweapons?|"
    r"biological weapons?|chemical weapons?|nerve agents?|sarin|vx(?: gas)?|ricin|anthrax|mustard gas|chlorine gas|"
    r"poison gas|"
    r"weapons? of mass destruction)"
)
_NOT_WEAPON = re.compile(r"\b(?:bath|seed|photo|glitter|yarn|flavou?r|cherry|smoke|stink) ?bombs?|\bbomb(?:ed|ing)? (?:the|an?|my) (?:exam|test|interview|audition)")
_GAME = re.compile(
    r"\b(?:minecraft|fortnite|roblox|terraria|skyrim|fallout|gta|grand theft auto|call of duty|counter-strike|csgo|"
    r"valorant|zelda|"
    r"pok[eé]mon|sims|the game|in-game|video ?game|dnd|d&d|dungeons|rpg|mmo|elden ring|dark souls|boss fight|npc)\b"
)
_DRUGS = (
    r"(?:meth(?:amphetamine)?|crystal meth|heroin|fentanyl|carfentanil|cocaine|crack cocaine|lsd|mdma|ecstasy|ghb|"
    r"pcp|"
    r"ketamine|dmt|opium|krokodil|desomorphine|mescaline|bath salts)"
)
_MALWARE = (
    r"(?:ransomware|keyloggers?|malware|computer virus(?:es)?|virus(?:es)? that|trojans?|worms? that|botnets?|"
    r"rootkits?|spyware|stalkerware|"
    r"infostealers?|stealers?|remote access trojans?|rats? to (?:control|access|spy)|backdoors?|exploit kits?|"
    r"ddos (?:tools?|scripts?|bots?|attacks?)|"
    r"phishing (?:pages?|sites?|kits?|emails?|campaigns?|links?)|credential harvesters?|crypters?|"
    r"zero-day exploits?|self-spreading \w+)"
)
_ACCOUNT_OWNER = (
    r"(?:someone(?:'s| else's)?|somebody(?:'s| else's)?|another person'?s?|a person'?s|other people'?s|people'?s|"
    r"a stranger'?s|his|her|their|"
    r"my (?:ex|ex-\w+|girlfriend|boyfriend|wife|husband|partner|neighbou?r|boss|coworker|co-worker|friend|sister|"
    r"brother|teacher|"
    r"classmate|roommate|crush)(?:'s)?)"
)
_MINOR = (
    r"(?:child|children|kids?|minors?|underage|under-age|preteens?|pre-teens?|prepubescent|toddlers?|infants?|"
    r"lolis?|lolicon|shota|"
    r"shotacon|(?:[1-9]|1[0-7])[- ]?(?:years?|yrs?)[- ]?olds?|(?:young|little) (?:girls?|boys?)|"
    r"(?:middle|elementary|primary|grade) school(?:ers?)?|(?:girls?|boys?) under (?:1[0-8]|[1-9])\b)"
)
# Sexual *content*: "sexual abuse" and "sex education" are not in it.
_SEXUAL = (
    r"(?:sexy|nudes?|naked|nudity|porn\w*|erotic\w*|explicit|lewd|nsfw|intercourse|orgasm\w*|genitals?|masturbat\w*|"
    r"fetish\w*|"
    r"hentai|xxx|seductive|aroused|horny|striptease|sexual (?:content|story|stories|scenes?|roleplay|role-play|"
    r"images?|pictures?|photos?|"
    r"videos?|acts?|fantas(?:y|ies)|encounters?|positions?)|sex (?:scenes?|story|stories|videos?|tapes?|chat|"
    r"roleplay|acts?|toys?))"
)
_DEFENSIVE = re.compile(
    r"\b(?:protect\w*|defend\w*|prevent\w*|detect\w*|recogni[sz]e|identify|spot|avoid|report\w*|mitigat\w*|"
    r"awareness|safe from|"
    r"signs of|secure|security training|remove|clean(?:ing)? up|recover\w*|against|dispose of safely|treat\w*|"
    r"what to do if)\b"
)
_CHILD_SAFETY = re.compile(
    r"\b(?:sex(?:ual)? education|sex ed|talk to (?:my |our )?(?:kids?|children|child|son|daughter) about|puberty|"
    r"consent education|"
    r"protect\w*|keep (?:\w+ )?safe|report\w*|block\w*|filter\w*|parental|safe ?search|restrict\w*|abuse prevention|"
    r"signs of|grooming signs|body safety|pediatric|paediatric)\b"
)


_EXPLICIT = re.compile(r"porn|nude|naked|erotic|lewd|hentai|xxx|sexy|masturbat|orgasm|\b(?:molest|groom|seduce|rape|undress)")


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    reason: str
    severity: Severity
    pattern: re.Pattern[str]
    """Starts with a literal alternation (fast to scan for) that must start a word."""
    before: re.Pattern[str] | None
    """When set, must match (anchored with ``$``) the text just before the match."""
    near: re.Pattern[str] | None
    """When set, must match as a word in the same sentence, at most :data:`_NEAR` characters away."""
    gates: tuple[str, ...]
    """The rule only runs on a view with a word that starts with one of these (single
    words) or that contains one of them (phrases)."""


def _rule(
    name: str, reason: str, severity: Severity, pattern: str, *, before: str | None = None, near: str | None = None,
    gates: str,
) -> _Rule:
    # A single-word gate is looked for as " word" in the view's space-joined words.
    keys = tuple(f" {g}" if _TOKEN.fullmatch(g) else g for g in gates.split("|"))
    return _Rule(
        name, reason, severity, re.compile(pattern), re.compile(before + "$") if before else None,
        re.compile(rf"\b{near}\b") if near else None, keys,
    )


_TOKEN = re.compile(r"[a-z0-9]+")


_BEFORE_WINDOW = 80
_HARM_TARGET = (r"(?:you|u|ya|your (?:\w+ )?(?:family|kids|children|wife|husband|mom|mother|dad|father|dog|house|friends)|"
    r"all of you)\b"
)
_I_WILL = (
    r"\b(?:i|we)(?:'ll| will|'m going to| am going to| are going to|'re going to|'m gonna| am gonna| gonna| want to|"
    r" wanna| plan to|"
    r" intend to| shall| swear i'?ll)(?: \w+)?(?: fucking| fuckin| f\*+ing)? "
)
_ASK_BEFORE = rf"\b{_ASK}(?: \w+){{0,3}}? "
_RULES: tuple[_Rule, ...] = (
    # --- toxicity ------------------------------------------------------------------
    _rule("slur", "toxicity", "high",
          "(?:" + "|".join(map(re.escape, sorted(_SLURS, key=len, reverse=True))) + "|" + "|".join(_AMBIGUOUS_SLURS) + r")\b",
          gates="bean|chin|fagg|gook|jung|kaff|kike|nigg|paki|porc|ragh|sand|spic|towe|tran|wetb|zipp"),
    _rule("threat", "toxicity", "high", rf"{_HARM_VERBS} {_HARM_TARGET}", before=_I_WILL,
          gates="kill|murder|stab|shoot|strangle|rape|behead|lynch|slaughter|butcher|torture|hurt|beat up|burn|"
                "kidnap|choke|execute|hunt down|gut|maim|blow up|bomb"),
    _rule("threat_you_die", "toxicity", "high", r"(?:die|bleed|be dead|be killed|be shot|be found dead)\b",
          before=r"\byou(?:'re| are| will| are going to|'re going to|'re gonna| gonna)(?: \w+)? ",
          gates="die|bleed|dead|killed|shot"),
    _rule("stalking_threat", "toxicity", "high", r"(?:i know where you (?:live|sleep|work)|watch your back(?=.{0,40}\b(?:bitch|or|kill|dead|die)\b))",
          gates="i know where you|watch your back"),
    _rule("mass_violence", "toxicity", "high",
          r"(?:shoot up|bomb|blow up|massacre|attack|burn down) (?:the |my |our |a |this |that )?(?:school|class|"
          r"mall|church|mosque|synagogue|"
          r"temple|office|workplace|concert|stadium|airport|station|building|parade|hospital|campus)\b",
          before=r"\b(?:i|we)(?:'ll| will|'m going to| am going to| are going to| plan to| want to| wanna|"
                 r" gonna)(?: \w+)? ",
          gates="shoot up|bomb|blow up|massacre|attack|burn down"),
    _rule("self_harm_incitement", "toxicity", "high", r"yourself\b", before=r"\b(?:kill|hang|shoot|drown|off|end|stab|cut) ",
          gates="yourself"),
    _rule("wish_death", "toxicity", "high",
          r"(?:kys|go (?:and )?die|drink bleach|nobody would (?:even )?miss you|(?:the )?world (?:would be|is|"
          r"will be) better (?:off )?without you|"
          r"you(?:'d| would) be better off dead)\b",
          gates="kys|go die|go and die|bleach|miss you|without you|better off dead"),
    _rule("wish_death_you", "toxicity", "high", r"(?:deserve to|should|need to|ought to) (?:just |all )?die\b", before=r"\b(?:you|u|ya) ",
          gates="die"),
    _rule("group_violence", "toxicity", "high",
          rf"{_GROUPS} (?:should|must|need to|deserve to|ought to|have to) (?:all )?(?:die|be killed|"
          rf"be exterminated|be gassed|be wiped out|"
          rf"burn|hang|be shot|be hanged|be lynched|be eradicated)\b",
          gates=" die| kill| extermin| gassed| wiped out| burn| hang| shot| lynch| eradicat"),
    _rule("group_violence_call", "toxicity", "high",
          rf"(?:kill|exterminate|gas|genocide|wipe out|eradicate|lynch|shoot) (?:all |every |the |those |"
          rf"these )*{_GROUPS}\b",
          gates="kill|exterminate|gas|genocide|wipe out|eradicate|lynch|shoot"),
    _rule("profanity", "toxicity", "medium", rf"(?:{_PROFANITY})\b",
          gates="fuck|fvck|f*ck|f@ck|f#ck|fuuck|f**k|f*k|motherf|shit|sh!t|sh*t|sh1t|bullsh|bitch|cunt|asshole|dick|"
                "wank|twat|cock|piss|whore|slut|jackass|dumbass"),
    _rule("insult", "toxicity", "medium",
          rf"(?:you(?:'re| are| r)?|u r|ur|you're such|you are such|you little|you stupid|you fucking) (?:(?:a|an|"
          rf"such a|so|the|total|complete|"
          rf"absolute|utter|fucking|little|big|real|pathetic|stupid|dumb|worthless|useless)\s+)*(?:{_INSULT_NOUNS}|"
          rf"{_INSULT_ADJ})\b",
          gates="you|u r|ur "),
    _rule("insult_phrase", "toxicity", "medium", r"(?:go to hell|screw you|shut the fuck up|stfu|eat shit|get lost,? (?:loser|idiot))\b",
          gates="go to hell|screw you|shut the fuck up|stfu|eat shit|get lost"),
    # --- harmful requests ----------------------------------------------------------
    _rule("weapons", "harmful_request", "high", _WEAPONS,
          before=rf"(?:{_ASK_BEFORE}{_MAKE}|\b(?:recipe|formula|blueprint|schematics?|instructions|synthesis|"
                 rf"ingredients|materials) "
          rf"(?:for|of|to make|needed for))(?: (?:a|an|the|some|my own|your own|homemade|home-made|working|"
          rf"functional|real|simple|powerful|"
          rf"deadly|small|large|big|pipe|nail|car|fertili[sz]er|dirty|nuclear|atomic|chemical|letter|suicide))* ",
          gates="bomb|explosive|ied|molotov|napalm|grenade|detonator|c-4|c4|tatp|semtex|nitroglycerin|ghost gun|"
                "untraceable|silencer|full-auto|full auto|weapon|nerve agent|sarin|vx|ricin|anthrax|mustard gas|"
                "chlorine gas|poison gas"),
    _rule("gun_no_checks", "harmful_request", "high",
          r"(?:buy|get|obtain|acquire) (?:a |an )?(?:gun|firearm|weapon|rifle|"
          r"pistol)s? without (?:a )?(?:background check|license|licence|id|"
          r"paperwork|permit)",
          gates="without a background|without background|without a license|without a licence|without license|"
                "without id|without a permit|without paperwork|without an id"),
    _rule("drugs", "harmful_request", "high", rf"{_DRUGS}\b",
          before=rf"{_ASK_BEFORE}(?:make|cook|synthesi[sz]e|produce|manufacture|extract|refine|brew|prepare|create|"
                 rf"grow|isolate)(?: (?:a|an|the|"
          rf"some|my own|homemade|pure|high-quality|batch of|pound of|kilo of|gram of))* |\b(?:recipe|synthesis|"
          rf"synthesis route|precursors?|"
          rf"ingredients|lab setup|instructions) (?:for|of|to make|needed for|to cook) ",
          gates="meth|heroin|fentanyl|cocaine|lsd|mdma|ecstasy|ghb|pcp|ketamine|dmt|opium|krokodil|desomorphine|"
                "mescaline|bath salts"),
    _rule("drugs_made", "harmful_request", "high", rf"{_DRUGS} (?:made|cooked|synthesi[sz]ed|produced|manufactured)\b",
          before=r"\bhow (?:is|are) ",
          gates="meth|heroin|fentanyl|cocaine|lsd|mdma|ecstasy|ghb|pcp|ketamine|dmt|opium|krokodil|desomorphine|"
                "mescaline|bath salts"),
    _rule("malware", "harmful_request", "high", _MALWARE,
          before=r"\b(?:write|code|create|build|develop|make|program|generate|design|craft|deploy|"
                 r"spread)(?: me)?(?: (?:a|an|the|some|my own|"
          r"working|functional|real|simple|custom|undetectable|new|python|c\+\+|powershell|javascript))* ",
          gates="ransomware|keylogger|malware|virus|trojan|worm|botnet|rootkit|spyware|stalkerware|stealer|rat to|"
                "rats to|backdoor|exploit|ddos|phishing|credential harvester|crypter|zero-day|self-spreading"),
    _rule("ddos_dox", "harmful_request", "high", r"(?:ddos|dox|doxx|swat) (?:a |an |the |someone|somebody|my|his|her|their|this|that)",
          before=rf"{_ASK_BEFORE}",
          gates="ddos|dox|doxx|swat"),
    _rule("account_intrusion", "harmful_request", "high",
          rf"(?:hack(?:ing)?|break(?:ing)?|get(?:ting)?|gain(?:ing)? (?:unauthori[sz]ed )?access|log(?:ging)?|"
          rf"sneak(?:ing)?) into {_ACCOUNT_OWNER}"
          rf"(?: \w+)? (?:accounts?|email|e-mail|inbox|phone|iphone|instagram|facebook|snapchat|whatsapp|tiktok|"
          rf"twitter|icloud|gmail|computer|"
          rf"laptop|pc|wifi|wi-fi|router|messages|camera|webcam|bank account)\b",
          gates="into"),
    _rule("credential_theft", "harmful_request", "high",
          rf"(?:steal|phish|crack|get|obtain|find out|guess)(?:ing)? {_ACCOUNT_OWNER} (?:\w+ )?(?:passwords?|"
          rf"credentials|login|credit cards?|"
          rf"identity|ssn|social security number|pin|2fa|two-factor)\b",
          gates="password|passwords|credentials|login|credit|identity|ssn|social security|pin|2fa|two-factor"),
    _rule("spying", "harmful_request", "high",
          rf"(?:spy on|track|monitor|read) {_ACCOUNT_OWNER} (?:\w+ )?(?:texts|messages|whatsapp|phone|location|"
          rf"emails?|dms)\b",
          gates="texts|messages|whatsapp|phone|location|email|emails|dms"),
    _rule("violence_request", "harmful_request", "high",
          rf"(?:kill|murder|poison|strangle|suffocate|stab|kidnap|abduct|torture|drown|assassinate|dismember|hurt|"
          rf"injure|maim|beat up|shoot|"
          rf"run over) {_VICTIM}\b(?!'s|’s| in (?:the )?game)", before=rf"\b{_ASK}(?: \w+){{0,2}}? ",
          gates="kill|murder|poison|strangle|suffocate|stab|kidnap|abduct|torture|drown|assassinate|dismember|hurt|"
                "injure|maim|beat up|shoot|run over"),
    _rule("murder_cover", "harmful_request", "high",
          r"(?:get away with|without getting caught (?:for|after)?) (?:a )?(?:murder|killing|poisoning|"
          r"manslaughter)\b|"
          r"(?:dispose of|get rid of|hide|dissolve) (?:a |the )?(?:dead )?(?:body|corpse)\b",
          gates="get away with|without getting caught|dispose of|get rid of|hide|dissolve"),
    _rule("self_harm", "harmful_request", "high",
          r"(?:kill myself|commit suicide|end my (?:own )?life|end it all|hang myself|overdose|od|cut myself|"
          r"slit my wrists?|die painlessly|"
          r"die quickly|suicide)\b",
          before=rf"(?:\b{_ASK}|\bmethods? (?:to|of|for)|\bwhat(?:'s| is) the (?:best|easiest|quickest|"
                 rf"least painful|most painless) way to)(?: \w+){{0,2}}? ",
          gates="overdose|myself|suicide|my life|my own life|end it all|wrist|die painlessly|die quickly| od"),
    _rule("self_harm_dose", "harmful_request", "high",
          r"(?:how many (?:\w+ ){0,2}(?:pills|tablets|capsules|mg|milligrams|grams) (?:\w+ ){0,4}?(?:to|would|will|"
          r"to make me) "
          r"(?:kill me|die|overdose|od|be lethal|be fatal)|lethal dose of \w+(?: \w+)? (?:to die|for suicide|"
          r"to kill myself|to end my life)|"
          r"(?:painless|easy|quick|quickest|best) (?:suicide|ways? to die|way to kill myself))\b",
          gates="how many|lethal dose|painless|suicide|way to die|ways to die|to kill myself"),
    _rule("child_sexual", "harmful_request", "high", rf"{_SEXUAL}\b", near=_MINOR,
          gates="sex|nude|naked|porn|erotic|explicit|lewd|nsfw|intercourse|orgasm|genital|masturbat|fetish|hentai|"
                "xxx|seductive|aroused|horny|striptease"),
    _rule("child_sexual_terms", "harmful_request", "high",
          r"(?:(?:child|kiddie|kiddy|underage|preteen|loli) ?porn\w*|cp (?:links?|videos?|pics|collection|"
          r"trading))\b",
          gates="porn|cp "),
    _rule("child_abuse", "harmful_request", "high",
          rf"(?:molest|groom|seduce|sleep with|have sex with|rape|undress|sexually abuse|touch) (?:a |an |the |my |"
          rf"your |this |that |some )?{_MINOR}\b",
          before=_ASK_BEFORE,
          gates="molest|groom|seduce|sleep with|have sex with|rape|undress|sexually abuse|touch"),
)


def _matches(view: str) -> list[tuple[_Rule, re.Match[str]]]:
    words = " " + " ".join(set(_TOKEN.findall(view)))
    found = []
    for rule in _RULES:
        if not any(g in (words if g[0] == " " else view) for g in rule.gates):
            continue
        for match in rule.pattern.finditer(view):
            at = match.start()
            if at and view[at - 1].isalnum() and view[at].isalnum():
                continue  # starts inside a word
            if rule.before and not rule.before.search(view, max(at - _BEFORE_WINDOW, 0), at):
                continue
            if rule.near and not _is_near(rule.near, view, match):
                continue
            found.append((rule, match))
    return found


_NEAR = 60
_SENTENCE_END = re.compile(r"[.!?\n]")


def _is_near(pattern: re.Pattern[str], view: str, match: re.Match[str]) -> bool:
    """Whether the pattern occurs in the match's sentence, close to it."""
    left = max(match.start() - _NEAR, 0)
    ends = [m.end() for m in _SENTENCE_END.finditer(view, left, match.start())]
    stop = _SENTENCE_END.search(view, match.end(), match.end() + _NEAR)
    return pattern.search(view, ends[-1] if ends else left, stop.start() if stop else match.end() + _NEAR) is not None


def _severity(rule: _Rule, match: re.Match[str], view: str) -> Severity | None:
    """The finding's severity in context, or None when the context clears it."""
    if rule.name.startswith("child_"):
        # HIGH in every framing (fiction, hypothetical, "for research"); only text about
        # keeping children safe from such content is not a request for it.
        return None if _CHILD_SAFETY.search(view) and not _EXPLICIT.search(match[0]) else "high"
    if rule.name.startswith("weapons") and (_NOT_WEAPON.search(view[max(match.start() - 8, 0) : match.end()]) or _GAME.search(view)):
        return None
    if rule.name == "violence_request" and _GAME.search(view):
        return None
    if rule.reason == "harmful_request" and not rule.name.startswith(("self_harm", "child_")) and _DEFENSIVE.search(view):
        return "medium"
    return rule.severity


def detect_toxicity(text: str) -> list[Finding]:
    """Toxicity and harmful-request findings in a text; empty when clean.

    ``toxicity`` is HIGH for slurs, threats, incitement to self-harm and calls for
    violence against a group, MEDIUM for profanity and insults; ``harmful_request`` is
    HIGH for requests for instructions to cause serious harm (MEDIUM when framed
    defensively), and always HIGH for sexual content involving minors. Findings in the
    text itself have spans; those only visible in a de-obfuscated view do not.
    """
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, view in enumerate(views(text)):
        lowered = view.lower()
        original = index == 0 and len(lowered) == len(text)
        for rule, match in _matches(lowered):
            severity = _severity(rule, match, lowered)
            if severity is None or (not original and rule.name in seen):
                continue
            seen.add(rule.name)
            span = match.span() if original else (None, None)
            findings.append(Finding(rule.reason, severity, *span))
    return findings

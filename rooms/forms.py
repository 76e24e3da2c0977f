from django import forms

from .models import Room


class RoomForm(forms.Form):
    name = forms.CharField(max_length=80)
    slug = forms.SlugField(
        max_length=60, required=False, help_text="The room's address; made from the name if blank."
    )
    topic = forms.CharField(max_length=200, required=False)
    is_private = forms.BooleanField(required=False, label="Private (members only)")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if slug and Room.objects.filter(slug=slug).exists():
            raise forms.ValidationError("That address is taken.")
        return slug
